"""Injected faults: which request gets one, and what each looks like on the wire.

A fault is either one of ``FAULT_KINDS`` or a Coze code answered once as JSON
(``{"code": 4100, "http_status": 401}``, with an optional ``"msg"``). Queued faults apply to
the next speech requests first, in order; after that each request draws a fault with
probability ``fault_rate`` from ``fault_kinds`` (seeded, so a run is repeatable).

On the wire:

| kind | what the client gets |
|---|---|
| http500 | HTTP 500, JSON code 5000 |
| json200 | HTTP 200, JSON code 5000 |
| html502 | HTTP 502, ``text/html`` proxy page |
| rate429 | HTTP 429, JSON code 4009, ``Retry-After: 1`` |
| rate429_bare | HTTP 429, JSON code 4009, no Retry-After |
| short_body | HTTP 200 ``audio/mpeg``, Content-Length N, N/4 bytes, then FIN |
| reset_before | the connection closes after the request is read, before any byte |
| reset_during | HTTP 200 ``audio/mpeg``, chunked, one chunk, then FIN with no last chunk |
| stall | HTTP 200 ``audio/mpeg``, Content-Length N, 256 bytes, silence for ``stall_s``, FIN |
| bad_audio | HTTP 200 ``audio/mpeg``, full Content-Length, bytes that decode as no format |

A stall ends early when the client leaves or the server stops. The bad_audio body has an odd
length, so it is not even valid pcm.

The quality kinds (``QUALITY_FAULT_KINDS``) answer HTTP 200 with valid audio in the requested
format that is wrong, so that only a check of the sound itself finds them:

| kind | the audio |
|---|---|
| silent | the answer's length of near-silence (noise at ``SILENT_NOISE_DBFS``) |
| truncated | the speech of the first half of the text only |
| padded | ``PAD_S`` seconds of digital silence inserted in the middle of the speech |
| clipped | the speech ``CLIP_GAIN_DB`` louder, clipped at full scale |
| quiet | the speech ``QUIET_GAIN_DB`` quieter |
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from aiohttp import web

from pipeline.errors import ConfigError
from pipeline.localserver.config import ALL_FAULT_KINDS, QUALITY_FAULT_KINDS
from pipeline.localserver.responses import CODE_MESSAGES, HTTP_STATUS_OF_CODE, coze_error

# Long enough that a client reading to Content-Length notices the gap, small enough to be fast.
FAKE_LENGTH = 4096
_BAD_AUDIO = b"this is not audio: an injected bad_audio fault. " * 40 + b"!"
_HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@dataclass(frozen=True)
class Fault:
    """One injected fault: a kind from ``FAULT_KINDS``, or ``kind="code"`` with a Coze code."""

    kind: str
    code: int | None = None
    http_status: int | None = None
    msg: str | None = None

    @property
    def spoils_audio(self) -> bool:
        """A quality fault: the request is served, and its text or samples are spoilt."""
        return self.kind in QUALITY_FAULT_KINDS

    @property
    def label(self) -> str:
        """The key of this fault in ``ServerStats.faults``."""
        return f"code:{self.code}" if self.kind == "code" else self.kind


def parse_fault(item: object) -> Fault:
    """A ``Fault`` from a kind name or a ``{"code": N, "http_status": S, "msg": ...}`` dict."""
    if isinstance(item, str):
        if item not in ALL_FAULT_KINDS:
            raise ConfigError(f"unknown fault {item!r}; known: {', '.join(ALL_FAULT_KINDS)}")
        return Fault(item)
    if isinstance(item, Mapping):
        return _parse_code_fault(item)
    raise ConfigError(f"a fault is a kind name or a {{'code': N}} object, not {item!r}")


def _parse_code_fault(item: Mapping[object, object]) -> Fault:
    unknown = set(item) - {"code", "http_status", "msg"}
    code, status, msg = item.get("code"), item.get("http_status"), item.get("msg")
    if unknown or not _is_int(code) or not (status is None or _is_int(status)):
        raise ConfigError(f"a code fault is {{'code': int, 'http_status': int}}, not {item!r}")
    if msg is not None and not isinstance(msg, str):
        raise ConfigError(f"the msg of a code fault must be a string, not {msg!r}")
    assert isinstance(code, int) and (status is None or isinstance(status, int))
    if status is not None and not 200 <= status <= 599:
        raise ConfigError(f"http_status {status} is not an HTTP status from 200 to 599")
    return Fault("code", code=code, http_status=status, msg=msg)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class FaultPlan:
    """Which request gets which fault: the queue first, then seeded draws.

    ``queue`` may be called from any thread (tests drive ``serve_in_thread`` servers).
    """

    def __init__(self, rate: float, kinds: tuple[str, ...], seed: int) -> None:
        self._rate = rate
        self._kinds = kinds
        self._seed = seed
        self._lock = threading.Lock()
        self._queued: deque[Fault] = deque()
        self._random = random.Random(seed)

    def queue(self, items: Iterable[object]) -> int:
        """Append faults (all checked before any is queued); returns the queue's length."""
        faults = [parse_fault(item) for item in items]
        with self._lock:
            self._queued.extend(faults)
            return len(self._queued)

    def next(self) -> Fault | None:
        """The fault for the next speech request, or None."""
        with self._lock:
            if self._queued:
                return self._queued.popleft()
            if self._rate > 0 and self._random.random() < self._rate:
                return Fault(self._random.choice(self._kinds))
            return None

    def reset(self) -> None:
        """Empty the queue and restart the seeded draws."""
        with self._lock:
            self._queued.clear()
            self._random = random.Random(self._seed)


async def answer_fault(
    request: web.Request, fault: Fault, *, stall_s: float, stopping: asyncio.Event
) -> web.StreamResponse:
    """Answer ``request`` with ``fault``; the transport-level kinds close the connection."""
    if fault.kind == "code":
        assert fault.code is not None
        msg = fault.msg or CODE_MESSAGES.get(fault.code, "injected error")
        status = fault.http_status or HTTP_STATUS_OF_CODE.get(fault.code, 400)
        return coze_error(request, fault.code, msg, http_status=status)
    if fault.kind in _SIMPLE:
        return _SIMPLE[fault.kind](request)
    # The transport faults read the whole request first, so that the client is not
    # interrupted while still sending (that would be a different failure).
    await request.read()
    if fault.kind == "reset_before":
        _close(request)
        return web.Response(status=500)
    if fault.kind == "reset_during":
        return await _reset_during(request)
    if fault.kind == "short_body":
        return await _partial(request, FAKE_LENGTH // 4)
    return await _stall(request, stall_s, stopping)


def _http500(request: web.Request) -> web.StreamResponse:
    return coze_error(request, 5000, CODE_MESSAGES[5000], http_status=500)


def _json200(request: web.Request) -> web.StreamResponse:
    return coze_error(request, 5000, CODE_MESSAGES[5000], http_status=200)


def _html502(request: web.Request) -> web.StreamResponse:
    return web.Response(status=502, text=_HTML_502, content_type="text/html")


def _rate429(request: web.Request) -> web.StreamResponse:
    return coze_error(request, 4009, CODE_MESSAGES[4009], headers={"Retry-After": "1"})


def _rate429_bare(request: web.Request) -> web.StreamResponse:
    return coze_error(request, 4009, CODE_MESSAGES[4009])


def _bad_audio(request: web.Request) -> web.StreamResponse:
    return web.Response(body=_BAD_AUDIO, content_type="audio/mpeg")


_SIMPLE = {
    "http500": _http500,
    "json200": _json200,
    "html502": _html502,
    "rate429": _rate429,
    "rate429_bare": _rate429_bare,
    "bad_audio": _bad_audio,
}


def _fake_audio(size: int) -> bytes:
    # MPEG sync bytes, so that a client cannot tell the start from real audio.
    return (b"\xff\xf3\x84\xc4" + bytes(range(252))) * (size // 256) + b"\x00" * (size % 256)


def _close(request: web.Request) -> None:
    # close(), not abort(): what was written is flushed first, then the FIN.
    if request.transport is not None:
        request.transport.close()


async def _audio_head(request: web.Request, *, length: int | None) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers={"Content-Type": "audio/mpeg"})
    if length is None:
        response.enable_chunked_encoding()
    else:
        response.content_length = length
    await response.prepare(request)
    return response


async def _partial(request: web.Request, sent: int) -> web.StreamResponse:
    response = await _audio_head(request, length=FAKE_LENGTH)
    await response.write(_fake_audio(sent))
    _close(request)
    return response


async def _reset_during(request: web.Request) -> web.StreamResponse:
    response = await _audio_head(request, length=None)
    await response.write(_fake_audio(FAKE_LENGTH // 2))
    _close(request)
    return response


async def _stall(
    request: web.Request, stall_s: float, stopping: asyncio.Event
) -> web.StreamResponse:
    response = await _audio_head(request, length=FAKE_LENGTH)
    await response.write(_fake_audio(256))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), timeout=stall_s)
    _close(request)
    return response


# -- quality faults: valid audio, wrong sound ---------------------------------------------

SILENT_NOISE_DBFS = -70.0
PAD_S = 5.0
CLIP_GAIN_DB = 18.0
QUIET_GAIN_DB = -20.0
Int16s = npt.NDArray[np.int16]


def spoil_text(fault: Fault, text: str) -> str:
    """The text the engine reads for ``fault``: half of it for ``truncated``."""
    if fault.kind != "truncated" or len(text) < 2:
        return text
    return text[: len(text) // 2]


def spoil_samples(fault: Fault, samples: Int16s, rate: int) -> Int16s:
    """The engine's ``samples`` as ``fault`` makes them (unchanged for other kinds)."""
    if fault.kind == "silent":
        # Seeded by the length: the same request gives the same bytes, like a real answer.
        noise = np.random.default_rng(samples.size).standard_normal(samples.size)
        level = 32768 * 10 ** (SILENT_NOISE_DBFS / 20)
        return np.rint(noise * level).astype(np.int16)
    if fault.kind == "padded":
        middle = samples.size // 2
        pad = np.zeros(round(PAD_S * rate), dtype=np.int16)
        padded: Int16s = np.concatenate((samples[:middle], pad, samples[middle:]))
        return padded
    if fault.kind in ("clipped", "quiet"):
        gain = 10 ** ((CLIP_GAIN_DB if fault.kind == "clipped" else QUIET_GAIN_DB) / 20)
        scaled = np.rint(samples.astype(np.float32) * gain)
        spoilt: Int16s = np.clip(scaled, -32768, 32767).astype(np.int16)
        return spoilt
    return samples
