"""The client against the local server and its fault knobs: every answer maps to one error.

Variants the local server never sends (an ``error`` object, JSON under an audio Content-Type,
an HTTP-date Retry-After...) come from a small canned-answer app at the end of this file.
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from pipeline.bounds import MAX_RETRY_AFTER_S, audio_body_limit
from pipeline.coze.client import ClientConfig, SpeechClient, Synthesis, Voice, parse_retry_after
from pipeline.errors import (
    CODE_NETWORK,
    CODE_SHORT_BODY,
    CODE_TIMEOUT,
    ApiError,
    BadAudio,
    ConfigError,
    FatalApiError,
    RateLimited,
    RequestRejected,
    TransientApiError,
)
from pipeline.localserver import LocalServer, body_key
from pipeline.speech import SpeechParams, SpeechRequest

pytestmark = pytest.mark.anyio

TOKEN = "pat_SECRET-token-0123456789abcdef"
VOICE = "local-tone-1"
TEXT = "你好，世界。"
LOGID_HEADER = "X-Tt-Logid"

MakeServer = Callable[..., LocalServer]


def request(text: str = TEXT, **params: Any) -> SpeechRequest:
    params.setdefault("voice_id", VOICE)
    return SpeechRequest(text, SpeechParams(**params))


def config(url: str, **overrides: Any) -> ClientConfig:
    values: dict[str, Any] = {"base_url": url, "token": TOKEN, "read_timeout": 10.0}
    values.update(overrides)
    return ClientConfig(**values)


async def fail(client: SpeechClient, req: SpeechRequest | None = None) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await client.synthesize(req or request())
    return caught.value


def assert_no_token(*things: object) -> None:
    for thing in things:
        assert TOKEN not in str(thing), f"token in str() of {type(thing).__name__}"
        assert TOKEN not in repr(thing), f"token in repr() of {type(thing).__name__}"


# ---------------------------------------------------------------------------------------------
# Success


async def test_success_returns_audio_and_metadata(local_server: LocalServer) -> None:
    async with SpeechClient(config(local_server.base_url)) as client:
        result = await client.synthesize(request(response_format="wav", sample_rate=16000))
    assert isinstance(result, Synthesis)
    assert result.audio[:4] == b"RIFF" and len(result.audio) > 1000
    assert (result.response_format, result.sample_rate) == ("wav", 16000)
    assert result.content_type.startswith("audio/")
    assert result.logid
    assert result.host == local_server.base_url.rstrip("/")
    assert local_server.stats.audio_answers == 1


async def test_defaults_are_reported_and_unset_fields_left_out(local_server: LocalServer) -> None:
    req = request(speed=1.5)
    async with SpeechClient(config(local_server.base_url)) as client:
        result = await client.synthesize(req)
    assert (result.response_format, result.sample_rate) == ("mp3", 24000)
    # The server counts bodies by their exact content: only input, voice_id and speed went.
    assert req.body() == {"input": TEXT, "voice_id": VOICE, "speed": 1.5}
    assert local_server.stats.by_input[body_key(req.body())] == 1


async def test_one_session_serves_many_requests(local_server: LocalServer) -> None:
    async with SpeechClient(config(local_server.base_url)) as client:
        for i in range(3):
            await client.synthesize(request(f"第{i}句。"))
    assert local_server.stats.audio_answers == 3


# ---------------------------------------------------------------------------------------------
# Faults of the local server


@dataclass(frozen=True)
class Expected:
    cls: type[ApiError]
    code: int
    http_status: int | None
    message_has: str
    has_logid: bool
    retry_after: float | None = None


FAULTS = {
    "rate429": Expected(RateLimited, 4009, 429, "limit", True, retry_after=1.0),
    "rate429_bare": Expected(RateLimited, 4009, 429, "limit", True),
    "http500": Expected(TransientApiError, 5000, 500, "internal", True),
    "json200": Expected(TransientApiError, 5000, 200, "internal", True),
    "html502": Expected(TransientApiError, 502, 502, "502 Bad Gateway", True),
    "short_body": Expected(TransientApiError, CODE_SHORT_BODY, None, "cut short", False),
    "reset_before": Expected(TransientApiError, CODE_NETWORK, None, "connection", False),
    "reset_during": Expected(TransientApiError, CODE_SHORT_BODY, None, "cut short", False),
}


@pytest.mark.parametrize("kind", sorted(FAULTS))
async def test_fault_maps_to_its_error(local_server: LocalServer, kind: str) -> None:
    expected = FAULTS[kind]
    local_server.queue_faults([kind])
    async with SpeechClient(config(local_server.base_url)) as client:
        error = await fail(client)
        assert type(error) is expected.cls
        assert error.code == expected.code
        assert error.http_status == expected.http_status
        assert expected.message_has in error.message
        assert bool(error.logid) is expected.has_logid
        assert error.retry_after == expected.retry_after
        assert error.host == local_server.base_url.rstrip("/")
        # The session survives the fault: the next request on it gets audio.
        assert (await client.synthesize(request())).audio


async def test_html_page_becomes_a_short_plain_message(local_server: LocalServer) -> None:
    local_server.queue_faults(["html502"])
    async with SpeechClient(config(local_server.base_url)) as client:
        error = await fail(client)
    assert "<" not in error.message and "\n" not in error.message
    assert len(error.message) <= 200


async def test_stalled_body_is_a_timeout(make_server: MakeServer) -> None:
    server = make_server(stall_s=20.0)
    server.queue_faults(["stall"])
    started = time.monotonic()
    async with SpeechClient(config(server.base_url, read_timeout=0.3)) as client:
        error = await fail(client)
    assert type(error) is TransientApiError
    assert error.code == CODE_TIMEOUT
    assert time.monotonic() - started < 5


async def test_bad_audio_is_returned_for_the_audio_check(local_server: LocalServer) -> None:
    """HTTP 200 with an audio type is audio to the client: audio.check_audio decodes it."""
    local_server.queue_faults(["bad_audio"])
    async with SpeechClient(config(local_server.base_url)) as client:
        result = await client.synthesize(request())
    assert result.audio.startswith(b"this is not audio")


async def test_connection_refused_is_a_network_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with SpeechClient(config(f"http://127.0.0.1:{port}", connect_timeout=2)) as client:
        error = await fail(client)
    assert type(error) is TransientApiError
    assert error.code == CODE_NETWORK
    assert error.host == f"http://127.0.0.1:{port}"


# Coze code -> what a batch client must do with it, written out rather than taken from
# errors.error_class, so that this test can catch a wrong table there too.
CODES = {
    4000: RequestRejected,
    4200: RequestRejected,
    4100: FatalApiError,
    4101: FatalApiError,
    4008: FatalApiError,
    4011: FatalApiError,
    4009: RateLimited,
    4013: RateLimited,
    4020: RateLimited,
    4102: TransientApiError,
    5000: TransientApiError,
}
CODE_STATUS = {4000: 400, 4200: 404, 4100: 401, 4101: 403, 4008: 403, 4011: 402, 4009: 429}


@pytest.mark.parametrize("http_status", ["200", "4xx/5xx"])
@pytest.mark.parametrize("code", sorted(CODES))
async def test_coze_code_maps_to_its_class(
    local_server: LocalServer, code: int, http_status: str
) -> None:
    status = 200 if http_status == "200" else CODE_STATUS.get(code, 500)
    message = f"injected code {code}"
    local_server.queue_faults([{"code": code, "http_status": status, "msg": message}])
    async with SpeechClient(config(local_server.base_url)) as client:
        error = await fail(client)
    assert type(error) is CODES[code]
    assert (error.code, error.http_status, error.message) == (code, status, message)
    assert error.logid


# ---------------------------------------------------------------------------------------------
# Refused before sending


@pytest.mark.parametrize(
    ("params", "text", "field_name"),
    [
        ({"speed": 9}, TEXT, "speed"),
        ({"sample_rate": 12345}, TEXT, "sample_rate"),
        ({"emotion": "joy"}, TEXT, "emotion"),
        ({}, "a" * 1025, "input"),
        ({"voice_id": ""}, TEXT, "voice_id"),
        ({"response_format": "flac"}, TEXT, "response_format"),
    ],
)
async def test_bad_request_is_refused_before_sending(
    local_server: LocalServer, params: dict[str, Any], text: str, field_name: str
) -> None:
    async with SpeechClient(config(local_server.base_url)) as client:
        error = await fail(client, request(text, **params))
    assert type(error) is RequestRejected
    assert error.code == 4000
    assert field_name in error.message
    assert error.http_status is None
    assert local_server.stats.requests == 0


async def test_missing_voice_id_is_refused_before_sending(local_server: LocalServer) -> None:
    req = SpeechRequest(TEXT, SpeechParams(voice_id=None))  # type: ignore[arg-type]
    async with SpeechClient(config(local_server.base_url)) as client:
        error = await fail(client, req)
    assert error.code == 4000 and "voice_id" in error.message
    assert local_server.stats.requests == 0


# ---------------------------------------------------------------------------------------------
# The token


async def test_token_is_never_shown(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = make_server(token="the-right-token")
    cfg = config(server.base_url)
    async with SpeechClient(cfg) as client:
        refused = await fail(client)
        voices_error: ApiError | None = None
        try:
            await client.list_voices()
        except ApiError as exc:
            voices_error = exc
        assert_no_token(client, cfg, refused, voices_error, refused.__cause__)
    assert type(refused) is FatalApiError and refused.code == 4100
    assert refused.http_status == 401
    assert type(voices_error) is FatalApiError
    assert caplog.records, "the client logs its requests at DEBUG"
    assert TOKEN not in caplog.text
    assert "Bearer" not in caplog.text


async def test_right_token_passes_and_results_hide_it(make_server: MakeServer) -> None:
    server = make_server(token=TOKEN)
    async with SpeechClient(config(server.base_url)) as client:
        result = await client.synthesize(request())
        assert_no_token(client, result)
    assert result.audio


async def test_token_hidden_in_transport_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with SpeechClient(config("http://127.0.0.1:9", connect_timeout=2)) as client:
        error = await fail(client)
    assert_no_token(error, error.__cause__)
    assert TOKEN not in caplog.text


# ---------------------------------------------------------------------------------------------
# Voices


async def test_list_voices(local_server: LocalServer) -> None:
    async with SpeechClient(config(local_server.base_url)) as client:
        voices = await client.list_voices()
    assert voices and all(isinstance(v, Voice) for v in voices)
    assert VOICE in {v.voice_id for v in voices}
    assert all(v.name and v.model_type in ("big", "small") for v in voices)


async def test_list_voices_of_the_espeak_engine(make_server: MakeServer) -> None:
    server = make_server(engine="espeak")
    async with SpeechClient(config(server.base_url)) as client:
        voices = await client.list_voices(model_type="small")
    by_id = {v.voice_id: v for v in voices}
    assert {"local-zh-female", "local-en-male"} <= set(by_id)
    assert "happy" in by_id["local-zh-female"].emotions


# ---------------------------------------------------------------------------------------------
# Configuration


@pytest.mark.parametrize(
    "overrides",
    [
        {"base_url": "ftp://api.coze.cn"},
        {"base_url": "api.coze.cn"},
        {"base_url": "https://user:secret@api.coze.cn"},
        {"read_timeout": 0},
        {"connect_timeout": -1},
        {"total_timeout": 0},
    ],
)
def test_bad_config_is_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        config("https://api.coze.cn", **overrides)


def test_config_host_and_repr() -> None:
    cfg = config("https://api.coze.com/some/path/")
    assert cfg.host == "https://api.coze.com"
    assert ClientConfig().host == "https://api.coze.cn"
    assert config("http://127.0.0.1:8080").host == "http://127.0.0.1:8080"
    assert_no_token(cfg, SpeechClient(cfg))


async def test_client_must_be_opened() -> None:
    client = SpeechClient(config("http://127.0.0.1:9"))
    with pytest.raises(RuntimeError, match="async with"):
        await client.synthesize(request())


def test_parse_retry_after() -> None:
    now = time.time()
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(30, abs=1)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("99999", MAX_RETRY_AFTER_S),
        ("inf", MAX_RETRY_AFTER_S),
        ("Infinity", MAX_RETRY_AFTER_S),
        ("1e400", MAX_RETRY_AFTER_S),
        ("-inf", 0.0),
        ("nan", None),
        ("-1e400", 0.0),
        ("Fri, 01 Jan 2099 00:00:00 GMT", MAX_RETRY_AFTER_S),
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER_S),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
        ("Fri, 01 Jan 2099 00:00:00", None),  # no zone: not an HTTP date
        ("Mon, 99 Foo 2099 99:99:99 GMT", None),
        ("0x10", None),
        ("9" * 5000, MAX_RETRY_AFTER_S),
        ("\x00\x1b[2J", None),
        ("119.5", 119.5),
    ],
)
def test_hostile_retry_after_is_finite_and_capped(value: str, expected: float | None) -> None:
    seconds = parse_retry_after(value)
    assert seconds == expected
    assert seconds is None or 0.0 <= seconds <= MAX_RETRY_AFTER_S


@pytest.mark.parametrize(
    ("base_url", "says"),
    [
        ("http://127.0.0.1:99999", "not a valid URL"),
        ("http://127.0.0.1:0", "port out of range"),
        ("http://127.0.0.1:-1", "not a valid URL"),
        ("http://[::1", "not a valid URL"),
        ("http://[zz::1]:80", "malformed host"),
        ("http://exa mple.com", "malformed host"),
        ("http://\x1bhost", "malformed host '\\x1bhost'"),
        ("file:///etc/passwd", "not an http(s) URL"),
        ("javascript:alert(1)", "not an http(s) URL"),
        ("https://tok:pw@api.coze.cn", "must not carry credentials"),
        ("https://tok@api.coze.cn", "must not carry credentials"),
        ("", "not an http(s) URL"),
    ],
)
def test_bad_base_url_is_a_one_line_config_error(base_url: str, says: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(says)) as caught:
        ClientConfig(base_url=base_url, token=TOKEN)
    assert "\n" not in str(caught.value) and TOKEN not in str(caught.value)
    assert caught.value.__cause__ is None


def test_base_url_holding_the_token_is_not_shown_in_its_error() -> None:
    with pytest.raises(ConfigError) as caught:
        ClientConfig(base_url=f"ftp://api.coze.cn/?t={TOKEN}", token=TOKEN)
    assert TOKEN not in str(caught.value) and "***" in str(caught.value)


@pytest.mark.parametrize("padded", [f"{TOKEN}\n", f"  {TOKEN}\r\n", f"\t{TOKEN} "])
def test_token_whitespace_around_is_stripped(padded: str) -> None:
    assert ClientConfig(token=padded).token == TOKEN


@pytest.mark.parametrize(
    ("token", "kind"),
    [
        (f"{TOKEN[:10]}\n{TOKEN[10:]}", "whitespace"),
        (f"{TOKEN[:10]}\x00{TOKEN[10:]}", "a control character"),
        (f"{TOKEN[:10]}\x7f{TOKEN[10:]}", "a control character"),
        (f"{TOKEN[:10]}é{TOKEN[10:]}", "a non-ASCII character"),
        (f"{TOKEN[:10]} {TOKEN[10:]}", "whitespace"),
    ],
)
def test_token_with_bad_characters_inside_is_refused_unshown(token: str, kind: str) -> None:
    with pytest.raises(ConfigError, match=kind) as caught:
        ClientConfig(token=token)
    assert TOKEN[:10] not in str(caught.value) and TOKEN[10:] not in str(caught.value)
    assert "position 11" in str(caught.value)


@pytest.mark.parametrize(
    ("fmt", "rate", "text", "speed", "expected"),
    [
        # 64 KiB + (30 s + 0.4 s x characters / min(speed, 1)) x bytes per second
        ("wav", 24000, "x" * 100, None, 65536 + 70 * 96000),
        ("pcm", 8000, "x" * 10, 0.5, 65536 + 38 * 32000),
        ("mp3", 48000, "x" * 300, 2.0, 65536 + 150 * 64000),
        ("ogg_opus", 24000, "好" * 50, None, 65536 + 50 * 64000),
    ],
)
def test_audio_body_limit_formula(
    fmt: str, rate: int, text: str, speed: float | None, expected: int
) -> None:
    req = request(text, response_format=fmt, sample_rate=rate, speed=speed)
    assert audio_body_limit(req) == expected


async def test_answer_larger_than_its_bound_is_bad_audio(canned: CannedServer) -> None:
    req = request("hi", response_format="mp3", sample_rate=8000)
    limit = audio_body_limit(req)
    canned.answers.append(Canned(200, bytes(limit + 1), "audio/mpeg"))
    canned.answers.append(Canned(200, bytes(limit), "audio/mpeg"))
    async with SpeechClient(config(canned.url)) as client:
        error = await fail(client, req)
        assert isinstance(error, BadAudio) and f"larger than {limit}" in error.message
        assert len((await client.synthesize(req)).audio) == limit  # the bound itself is fine


async def test_error_body_is_cut_at_its_bound(canned: CannedServer) -> None:
    page = b"<html><body><h1>Busy</h1>" + b"<p>x</p>" * 100_000 + b"</body></html>"
    canned.answers.append(Canned(503, page, "text/html"))
    async with SpeechClient(config(canned.url)) as client:
        error = await fail(client)
    assert isinstance(error, TransientApiError) and error.message.startswith("Busy")
    assert error.code == 503 and len(error.message) <= 500


# ---------------------------------------------------------------------------------------------
# Canned answers the local server does not give


@dataclass
class Canned:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class CannedServer:
    url: str
    answers: list[Canned]
    seen: list[dict[str, Any]]


@pytest.fixture
async def canned() -> AsyncIterator[CannedServer]:
    answers: list[Canned] = []
    seen: list[dict[str, Any]] = []

    async def answer(req: web.Request) -> web.Response:
        seen.append({"path": req.path, "query": dict(req.query), "headers": dict(req.headers)})
        given = answers.pop(0)
        headers = {"Content-Type": given.content_type, **given.headers}
        return web.Response(status=given.status, body=given.body, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield CannedServer(f"http://127.0.0.1:{port}", answers, seen)
    finally:
        await runner.cleanup()


def as_json(value: object) -> bytes:
    return json.dumps(value).encode()


CANNED = {
    "error object beside code": (
        Canned(
            403,
            as_json(
                {
                    "code": 4101,
                    "msg": "no createSpeech permission",
                    "error": {"logid": "LOG-ERR", "detail": "x", "help_doc": "https://h"},
                }
            ),
        ),
        Expected(FatalApiError, 4101, 403, "no createSpeech permission", True),
        "LOG-ERR",
    ),
    "error object only": (
        Canned(500, as_json({"error": {"code": 5000, "message": "boom", "logid": "LOG-E2"}})),
        Expected(TransientApiError, 5000, 500, "boom", True),
        "LOG-E2",
    ),
    "JSON under an audio type": (
        Canned(200, as_json({"code": 4200, "msg": "voice not found"}), "audio/mpeg"),
        Expected(RequestRejected, 4200, 200, "voice not found", False),
        None,
    ),
    "JSON under text/plain": (
        Canned(200, as_json({"code": 4013, "msg": "model busy"}), "text/plain"),
        Expected(RateLimited, 4013, 200, "model busy", False),
        None,
    ),
    "logid only in the header": (
        Canned(400, as_json({"code": 4000, "msg": "bad"}), headers={LOGID_HEADER: "LOG-H"}),
        Expected(RequestRejected, 4000, 400, "bad", True),
        "LOG-H",
    ),
    "HTML at HTTP 200": (
        Canned(200, b"<html><body><h1>Portal login</h1></body></html>", "text/html"),
        Expected(RequestRejected, 200, 200, "Portal login", False),
        None,
    ),
    "HTML 404": (
        Canned(404, b"<html><title>Not Found</title></html>", "text/html"),
        Expected(RequestRejected, 404, 404, "Not Found", False),
        None,
    ),
    "plain 503 with a date": (
        Canned(
            503,
            b"Service Unavailable",
            "text/plain",
            {"Retry-After": email.utils.formatdate(time.time() + 120, usegmt=True)},
        ),
        Expected(TransientApiError, 503, 503, "Service Unavailable", False),
        None,
    ),
    "bare 429 page": (
        Canned(429, b"Too Many Requests", "text/plain", {"Retry-After": "7"}),
        Expected(RateLimited, 429, 429, "Too Many Requests", False, retry_after=7.0),
        None,
    ),
    "redirect": (
        Canned(301, b"", "text/html", {"Location": "https://api.coze.cn/v1/audio/speech"}),
        Expected(RequestRejected, 301, 301, "redirected to https://api.coze.cn", False),
        None,
    ),
    "empty audio": (
        Canned(200, b"", "audio/mpeg"),
        Expected(BadAudio, -4, 200, "empty", False),
        None,
    ),
    "JSON success instead of audio": (
        Canned(200, as_json({"code": 0, "msg": "", "data": {}})),
        Expected(BadAudio, -4, 200, "instead of audio", False),
        None,
    ),
}


@pytest.mark.parametrize("name", list(CANNED))
async def test_canned_answer_maps_to_its_error(canned: CannedServer, name: str) -> None:
    answer, expected, logid = CANNED[name]
    canned.answers.append(answer)
    async with SpeechClient(config(canned.url)) as client:
        error = await fail(client)
    assert type(error) is expected.cls
    assert (error.code, error.http_status) == (expected.code, expected.http_status)
    assert expected.message_has in error.message
    assert error.logid == logid
    if expected.retry_after is not None:
        assert error.retry_after == expected.retry_after


async def test_http_date_retry_after_is_kept(canned: CannedServer) -> None:
    # The date is made now: one made at import time decays while the rest of the suite runs.
    in_two_minutes = email.utils.formatdate(time.time() + 120, usegmt=True)
    canned.answers.append(
        Canned(503, b"Service Unavailable", "text/plain", {"Retry-After": in_two_minutes})
    )
    async with SpeechClient(config(canned.url)) as client:
        error = await fail(client)
    assert error.retry_after is not None and 100 < error.retry_after <= 120


async def test_octet_stream_is_audio(canned: CannedServer) -> None:
    canned.answers.append(Canned(200, b"\xff\xf3" + bytes(500), "application/octet-stream"))
    async with SpeechClient(config(canned.url)) as client:
        result = await client.synthesize(request(response_format="pcm"))
    assert len(result.audio) == 502 and result.response_format == "pcm"
    assert canned.seen[0]["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert canned.seen[0]["headers"]["User-Agent"].startswith("tts-pipeline/")


def voice_page(ids: list[str], has_more: bool) -> Canned:
    items = [{"voice_id": i, "name": i, "model_type": "big"} for i in ids]
    data = {"has_more": has_more, "voice_list": items}
    return Canned(200, as_json({"code": 0, "msg": "", "data": data}))


async def test_list_voices_follows_every_page(canned: CannedServer) -> None:
    canned.answers += [voice_page(["a", "b"], True), voice_page(["c"], True), voice_page([], False)]
    async with SpeechClient(config(canned.url)) as client:
        voices = await client.list_voices(model_type="big")
    assert [v.voice_id for v in voices] == ["a", "b", "c"]
    assert [q["query"]["page_num"] for q in canned.seen] == ["1", "2", "3"]
    assert {q["query"]["page_size"] for q in canned.seen} == {"100"}
    assert {q["query"]["model_type"] for q in canned.seen} == {"big"}
    assert {q["query"]["voice_state"] for q in canned.seen} == {"all"}


async def test_list_voices_error_code(canned: CannedServer) -> None:
    canned.answers.append(Canned(200, as_json({"code": 4101, "msg": "no listVoice"})))
    async with SpeechClient(config(canned.url)) as client:
        with pytest.raises(FatalApiError) as caught:
            await client.list_voices()
    assert caught.value.code == 4101 and caught.value.http_status == 200


async def test_hostile_voice_list_shapes_are_bounded(canned: CannedServer) -> None:
    odd = {"voice_id": "x" * 5000, "name": ["not", "text"], "support_emotions": 7}
    many_emotions = {"voice_id": "e", "support_emotions": [{"emotion": "sad"}] * 500}
    page = {"has_more": True, "voice_list": [odd, many_emotions, "junk", 3]}
    canned.answers += [
        Canned(200, as_json({"code": 0, "msg": "", "data": page})),
        Canned(200, as_json({"code": 0, "msg": "", "data": {"has_more": True,
                                                             "voice_list": 12}})),
    ]
    async with SpeechClient(config(canned.url)) as client:
        voices = await client.list_voices()
    assert [len(v.voice_id) for v in voices] == [1000, 1]
    assert voices[0].name == "['not', 'text']" and voices[0].emotions == ()
    assert len(voices[1].emotions) == 50
    assert len(canned.seen) == 2  # a voice_list that is not a list ends the paging


async def test_endless_voice_pages_stop_at_the_voice_bound(canned: CannedServer) -> None:
    pages = 10_000 // 100 + 5
    canned.answers += [voice_page([f"p{p}-{i}" for i in range(100)], True) for p in range(pages)]
    async with SpeechClient(config(canned.url)) as client:
        voices = await client.list_voices()
    assert len(voices) == 10_000 and len(canned.seen) == 100


async def test_token_cut_by_the_snippet_window_leaves_no_start_behind(
    canned: CannedServer,
) -> None:
    # The snippet reads the first 4,000 bytes: the token straddles that edge.
    body = b"busy" + b" " * 3980 + TOKEN.encode()
    canned.answers.append(Canned(502, body, "text/plain"))
    async with SpeechClient(config(canned.url)) as client:
        error = await fail(client)
    assert TOKEN[:12] not in error.message and error.message == "busy ***"
