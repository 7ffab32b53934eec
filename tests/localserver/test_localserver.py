"""The local server against the Coze contract (coze-speech-api.md), over real HTTP.

Every test talks to a server on an ephemeral loopback port with a plain aiohttp client (or
cozepy, the official SDK), and checks what is on the wire: statuses, headers, codes, bytes.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import pytest

from pipeline.errors import ConfigError
from pipeline.localserver import (
    FAULT_KINDS,
    LocalServer,
    ServerConfig,
    body_key,
    make_engine,
    running_server,
    serve_forever,
    tone_duration,
    tone_frequency,
)
from pipeline.localserver.encode import apply_gain, encode
from pipeline.localserver.tone import TONE_EXAMPLE_VOICE as _EXAMPLE
from pipeline.speech import FORMATS, SAMPLE_RATES, opus_rate

pytestmark = pytest.mark.anyio

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LOGID = re.compile(r"^\d{17}[0-9A-F]{18}$")
SHORT = "你好，世界。"
LONG = "你好，世界。" * 8

MakeServer = Callable[..., LocalServer]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def post(
    server: LocalServer,
    body: Any,
    *,
    headers: dict[str, str] | None = None,
    path: str = "/v1/audio/speech",
) -> Answer:
    """One POST; ``body`` is sent as JSON unless it is bytes."""
    send_headers = dict(AUTH if headers is None else headers)
    async with aiohttp.ClientSession() as session:
        if isinstance(body, bytes):
            request = session.post(server.base_url + path, data=body, headers=send_headers)
        else:
            request = session.post(server.base_url + path, json=body, headers=send_headers)
        async with request as response:
            return Answer(response.status, dict(response.headers), await response.read())


async def get(server: LocalServer, path: str, headers: dict[str, str] | None = None) -> Answer:
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.base_url + path, headers=AUTH if headers is None else headers) as r,
    ):
        return Answer(r.status, dict(r.headers), await r.read())


def speech(text: str = SHORT, **fields: Any) -> dict[str, Any]:
    return {"input": text, "voice_id": "local-tone-1", **fields}


def decode(data: bytes, fmt: str, rate: int) -> tuple[int, np.ndarray[Any, Any]]:
    """(decoded rate, int16 mono samples) of an answer, with PyAV except for headerless pcm."""
    if fmt == "pcm":
        return rate, np.frombuffer(data, dtype="<i2")
    with av.open(io.BytesIO(data), "r") as container:
        frames = [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]
        decoded_rate = container.streams.audio[0].codec_context.sample_rate
    samples = np.concatenate(frames)
    if samples.dtype.kind == "f":
        samples = np.rint(samples * 32767).astype(np.int16)
    return decoded_rate, samples


def opus_head_rate(data: bytes) -> int:
    """The input sample rate field of an Ogg Opus stream's OpusHead packet."""
    head = data.index(b"OpusHead")
    return int.from_bytes(data[head + 12 : head + 16], "little")


def rms(samples: np.ndarray[Any, Any]) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def assert_coze_error(answer: Answer, code: int, status: int) -> dict[str, Any]:
    assert answer.status == status, answer.body
    assert answer.headers["Content-Type"].startswith("application/json")
    payload: dict[str, Any] = answer.json()
    assert payload["code"] == code
    assert payload["detail"]["logid"] == answer.headers["X-Tt-Logid"]
    return payload


# -- audio -------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", SAMPLE_RATES)
@pytest.mark.parametrize("fmt", FORMATS)
async def test_every_format_and_rate_decodes_at_the_expected_rate(
    local_server: LocalServer, fmt: str, rate: int
) -> None:
    answer = await post(local_server, speech(response_format=fmt, sample_rate=rate))
    assert answer.status == 200
    content_type = {"mp3": "audio/mpeg", "wav": "audio/wav", "pcm": "audio/pcm"}
    assert answer.headers["Content-Type"] == content_type.get(fmt, "audio/ogg")
    assert int(answer.headers["Content-Length"]) == len(answer.body)
    decoded_rate, samples = decode(answer.body, fmt, rate)
    if fmt == "ogg_opus":
        # FFmpeg decodes Opus at 48 kHz; the codec's rate is the one in the OpusHead.
        assert opus_head_rate(answer.body) == opus_rate(rate)
        assert decoded_rate == 48000
    else:
        assert decoded_rate == rate
    assert len(samples) / decoded_rate == pytest.approx(tone_duration(SHORT), abs=0.03)


@pytest.mark.parametrize("fmt", FORMATS)
async def test_duration_grows_with_the_text(local_server: LocalServer, fmt: str) -> None:
    durations = []
    for text in (SHORT, LONG):
        answer = await post(local_server, speech(text, response_format=fmt, sample_rate=16000))
        rate, samples = decode(answer.body, fmt, 16000)
        durations.append(len(samples) / rate)
    assert durations[1] == pytest.approx(tone_duration(LONG), abs=0.03)
    assert durations[1] > durations[0] * 5


async def test_speed_shortens_the_audio(local_server: LocalServer) -> None:
    slow = await post(local_server, speech(LONG, response_format="pcm", speed=0.5))
    fast = await post(local_server, speech(LONG, response_format="pcm", speed=2))
    assert len(slow.body) / 2 / 24000 == pytest.approx(tone_duration(LONG, 0.5), abs=1e-4)
    assert len(fast.body) / 2 / 24000 == pytest.approx(tone_duration(LONG, 2), abs=1e-4)


async def test_pcm_is_the_samples_of_the_wav(local_server: LocalServer) -> None:
    wav = await post(local_server, speech(LONG, response_format="wav", sample_rate=22050))
    pcm = await post(local_server, speech(LONG, response_format="pcm", sample_rate=22050))
    _, wav_samples = decode(wav.body, "wav", 22050)
    assert wav.body[:4] == b"RIFF" and len(wav.body) == 44 + len(pcm.body)
    assert np.array_equal(wav_samples, np.frombuffer(pcm.body, dtype="<i2"))


@pytest.mark.parametrize(("loudness", "ratio"), [(-50, 0.5), (100, 2.0), (50, 1.5)])
async def test_loudness_rate_is_linear_gain(
    local_server: LocalServer, loudness: int, ratio: float
) -> None:
    plain = await post(local_server, speech(response_format="pcm"))
    changed = await post(local_server, speech(response_format="pcm", loudness_rate=loudness))
    level = rms(np.frombuffer(changed.body, "<i2")) / rms(np.frombuffer(plain.body, "<i2"))
    assert level == pytest.approx(ratio, rel=0.01)


def test_gain_clips_instead_of_wrapping() -> None:
    loud = np.array([20000, -20000, 100], dtype=np.int16)
    assert apply_gain(loud, 100).tolist() == [32767, -32768, 200]


async def test_the_pitch_tells_neighbouring_texts_apart(local_server: LocalServer) -> None:
    texts = ["第一句话。", "第二句话。", "第三句话。"]
    peaks = []
    for text in texts:
        answer = await post(local_server, speech(text, response_format="pcm", sample_rate=16000))
        samples = np.frombuffer(answer.body, "<i2").astype(np.float64)
        spectrum = np.abs(np.fft.rfft(samples))
        peaks.append(np.argmax(spectrum) * 16000 / len(samples))
    expected = [tone_frequency(t) for t in texts]
    assert peaks == pytest.approx(expected, abs=5)
    assert len(set(expected)) == 3


def test_tone_pitch_depends_on_emotion_and_stays_in_range() -> None:
    assert tone_frequency("x", "happy") != tone_frequency("x")
    assert all(200 <= tone_frequency(str(i)) <= 2000 for i in range(200))


def test_encoding_is_deterministic() -> None:
    samples = make_engine("tone").synthesize("同一句话", "1", 1.0, None, 4.0, 24000)
    for fmt in FORMATS:
        assert encode(samples, 24000, fmt) == encode(samples, 24000, fmt)


def test_mp3_is_one_clean_stream() -> None:
    samples = make_engine("tone").synthesize(LONG, "1", 1.0, None, 4.0, 24000)
    data = encode(samples, 24000, "mp3")
    assert data[:2] == b"\xff\xf3"  # an MPEG-2 layer III frame header, no ID3 tag in front
    assert data.count(b"Info") + data.count(b"Xing") == 1


# -- request errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (speech(speed=9), "speed"),
        (speech(sample_rate=12345), "sample_rate"),
        (speech(emotion="joy"), "emotion"),
        (speech("a" * 1025), "input"),
        ({"input": SHORT}, "voice_id"),
        (speech(response_format="flac"), "response_format"),
        (speech(loudness_rate=101), "loudness_rate"),
        (speech(voice="x"), "voice"),
    ],
)
async def test_a_bad_field_is_4000_naming_it(
    local_server: LocalServer, body: dict[str, Any], field: str
) -> None:
    payload = assert_coze_error(await post(local_server, body), 4000, 400)
    assert field in payload["msg"]
    assert local_server.stats.audio_answers == 0


@pytest.mark.parametrize(
    ("data", "content_type", "words"),
    [
        (b'{"input": ', "application/json", "not valid JSON"),
        (b"\xff\xfe{}", "application/json", "not valid JSON"),
        (b'["hi"]', "application/json", "JSON object"),
        (b'{"input": "hi", "voice_id": "1"}', "text/plain", "Content-Type"),
    ],
)
async def test_a_bad_body_is_4000(
    local_server: LocalServer, data: bytes, content_type: str, words: str
) -> None:
    answer = await post(local_server, data, headers={**AUTH, "Content-Type": content_type})
    assert words in assert_coze_error(answer, 4000, 400)["msg"]


async def test_unknown_voice_is_4200_and_coze_like_ids_work(local_server: LocalServer) -> None:
    payload = assert_coze_error(await post(local_server, speech(voice_id="nobody")), 4200, 404)
    assert "nobody" in payload["msg"]
    assert (await post(local_server, speech(voice_id="7426720361733144585"))).status == 200


# -- authentication ----------------------------------------------------------------------


async def test_only_the_configured_token_passes(make_server: MakeServer) -> None:
    server = make_server(token=TOKEN)
    assert (await post(server, speech())).status == 200
    refused = await post(server, speech(), headers={"Authorization": "Bearer wrong-token"})
    payload = assert_coze_error(refused, 4100, 401)
    assert "authentication is invalid" in payload["msg"]
    assert "wrong-token" not in refused.body.decode() and TOKEN not in refused.body.decode()
    voices = await get(server, "/v1/audio/voices", headers={"Authorization": "Bearer nope"})
    assert_coze_error(voices, 4100, 401)


@pytest.mark.parametrize("header", [None, "Basic abc", "Bearer ", "bearer"])
async def test_a_missing_bearer_token_is_4100_even_without_a_configured_token(
    local_server: LocalServer, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    assert_coze_error(await post(local_server, speech(), headers=headers), 4100, 401)


async def test_any_bearer_token_passes_without_a_configured_token(
    local_server: LocalServer,
) -> None:
    answer = await post(local_server, speech(), headers={"Authorization": "Bearer anything"})
    assert answer.status == 200


def test_the_token_is_never_in_a_repr() -> None:
    config = ServerConfig(token=TOKEN)
    assert TOKEN not in repr(config)
    assert TOKEN not in repr(LocalServer(config))


# -- knobs -------------------------------------------------------------------------------


async def test_over_the_qps_limit_is_429_4009_with_retry_after(make_server: MakeServer) -> None:
    server = make_server(qps=2, burst=2)
    answers = [await post(server, speech()) for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 429]
    assert_coze_error(answers[2], 4009, 429)
    assert answers[2].headers["Retry-After"] == "1"
    assert server.stats.rate_limited == 1
    assert server.stats.requests == 3
    assert server.stats.audio_answers == 2
    await asyncio.sleep(0.55)  # one token back at 2 per second
    assert (await post(server, speech())).status == 200


async def test_over_max_in_flight_is_429_4020(make_server: MakeServer) -> None:
    server = make_server(max_in_flight=2, latency_ms=300)
    answers = await asyncio.gather(*(post(server, speech()) for _ in range(3)))
    statuses = sorted(a.status for a in answers)
    assert statuses == [200, 200, 429]
    assert_coze_error(next(a for a in answers if a.status == 429), 4020, 429)
    assert server.stats.max_in_flight == 2


async def test_latency_grows_with_the_utf8_bytes(make_server: MakeServer) -> None:
    server = make_server(latency_ms=50, latency_per_byte_ms=2)
    started = time.monotonic()
    await post(server, speech("好" * 50))  # 150 bytes: 50 + 300 ms
    assert time.monotonic() - started >= 0.35


def test_jitter_is_seeded_and_bounded() -> None:
    def draws(seed: int) -> list[float]:
        server = LocalServer(ServerConfig(latency_ms=100, jitter=0.5, seed=seed))
        return [server._latency_s("x") for _ in range(50)]

    first = draws(7)
    assert first == draws(7) and first != draws(8)
    assert all(0.05 <= d <= 0.15 for d in first) and max(first) - min(first) > 0.05


@pytest.mark.parametrize(
    "bad",
    [
        {"qps": 0},
        {"burst": 0},
        {"engine": "festival"},
        {"fault_rate": 1.5},
        {"fault_kinds": ("http500", "meteor")},
        {"jitter": 2},
        {"port": 70000},
    ],
)
def test_bad_knobs_are_a_config_error(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        ServerConfig(**bad)


# -- faults ------------------------------------------------------------------------------


async def fault_answer(server: LocalServer, kind: object) -> Answer | Exception:
    server.queue_faults([kind])
    timeout = aiohttp.ClientTimeout(sock_read=0.5)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(server.base_url + "/v1/audio/speech", json=speech(), headers=AUTH) as r,
        ):
            return Answer(r.status, dict(r.headers), await r.read())
    except (aiohttp.ClientError, TimeoutError) as exc:
        return exc


async def test_json_faults(local_server: LocalServer) -> None:
    assert_coze_error(await fault_answer(local_server, "http500"), 5000, 500)  # type: ignore[arg-type]
    assert_coze_error(await fault_answer(local_server, "json200"), 5000, 200)  # type: ignore[arg-type]
    limited = await fault_answer(local_server, "rate429")
    assert isinstance(limited, Answer)
    assert_coze_error(limited, 4009, 429)
    assert limited.headers["Retry-After"] == "1"
    bare = await fault_answer(local_server, "rate429_bare")
    assert isinstance(bare, Answer)
    assert_coze_error(bare, 4009, 429)
    assert "Retry-After" not in bare.headers
    coded = await fault_answer(local_server, {"code": 4101, "http_status": 200, "msg": "nope"})
    assert isinstance(coded, Answer)
    assert assert_coze_error(coded, 4101, 200)["msg"] == "nope"


async def test_html502_is_a_proxy_page(local_server: LocalServer) -> None:
    answer = await fault_answer(local_server, "html502")
    assert isinstance(answer, Answer)
    assert answer.status == 502
    assert answer.headers["Content-Type"].startswith("text/html")
    assert b"502 Bad Gateway" in answer.body
    assert answer.headers["X-Tt-Logid"]


async def test_bad_audio_claims_audio_but_does_not_decode(local_server: LocalServer) -> None:
    answer = await fault_answer(local_server, "bad_audio")
    assert isinstance(answer, Answer)
    assert answer.status == 200 and answer.headers["Content-Type"] == "audio/mpeg"
    assert int(answer.headers["Content-Length"]) == len(answer.body)
    with pytest.raises(av.error.FFmpegError):
        decode(answer.body, "mp3", 24000)
    assert len(answer.body) % 2 == 1  # not even a whole number of pcm samples


@pytest.mark.parametrize(
    ("kind", "error", "words"),
    [
        ("short_body", aiohttp.ClientPayloadError, "content length"),
        ("reset_during", aiohttp.ClientPayloadError, "transfer length"),
        ("reset_before", aiohttp.ServerDisconnectedError, "disconnected"),
        ("stall", TimeoutError, ""),
    ],
)
async def test_transport_faults_break_the_connection(
    local_server: LocalServer, kind: str, error: type[Exception], words: str
) -> None:
    started = time.monotonic()
    outcome = await fault_answer(local_server, kind)
    assert isinstance(outcome, error), outcome
    assert words in str(outcome)
    assert time.monotonic() - started < 5
    # The server is fine afterwards.
    assert (await post(local_server, speech())).status == 200


async def test_short_body_and_stall_send_headers_and_some_bytes(
    local_server: LocalServer,
) -> None:
    for kind, expected in (("short_body", 1024), ("stall", 256)):
        local_server.queue_faults([kind])
        received = b""
        timeout = aiohttp.ClientTimeout(sock_read=0.3)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(
                local_server.base_url + "/v1/audio/speech", json=speech(), headers=AUTH
            ) as response,
        ):
            assert response.status == 200 and response.headers["Content-Length"] == "4096"
            with pytest.raises((aiohttp.ClientPayloadError, TimeoutError)):
                while chunk := await response.content.read(512):
                    received += chunk
        assert len(received) == expected


def test_stop_does_not_wait_for_a_stalled_request(make_server: MakeServer) -> None:
    async def stalled_client(base_url: str, headers_in: asyncio.Event) -> None:
        async with aiohttp.ClientSession() as session:
            url = base_url + "/v1/audio/speech"
            async with session.post(url, json=speech(), headers=AUTH) as response:
                headers_in.set()
                await response.read()

    async def scenario() -> float:
        async with running_server(ServerConfig(stall_s=60)) as server:
            server.queue_faults(["stall"])
            headers_in = asyncio.Event()
            client = asyncio.ensure_future(stalled_client(server.base_url, headers_in))
            await headers_in.wait()
            started = time.monotonic()
        elapsed = time.monotonic() - started
        with pytest.raises(aiohttp.ClientPayloadError):
            await client
        return elapsed

    assert asyncio.run(scenario()) < 1.5


async def test_every_fault_kind_is_counted_and_not_billed(local_server: LocalServer) -> None:
    for kind in FAULT_KINDS:
        await fault_answer(local_server, kind)
    stats = local_server.stats
    assert stats.faults == {kind: 1 for kind in FAULT_KINDS}
    assert stats.audio_answers == 0 and stats.billed_characters == 0
    assert stats.rate_limited == 2


async def test_fault_rate_draws_are_seeded(make_server: MakeServer) -> None:
    async def statuses(seed: int) -> list[int]:
        server = make_server(fault_rate=0.5, fault_kinds=("http500",), seed=seed)
        return [(await post(server, speech())).status for _ in range(20)]

    first = await statuses(3)
    assert first == await statuses(3)
    assert set(first) == {200, 500}


async def test_queued_faults_come_first_and_in_order(local_server: LocalServer) -> None:
    local_server.queue_faults(["http500", {"code": 4008, "http_status": 429}])
    answers = [await post(local_server, speech()) for _ in range(3)]
    assert [a.status for a in answers] == [500, 429, 200]
    assert answers[1].json()["code"] == 4008


def test_a_bad_fault_is_refused_whole(local_server: LocalServer) -> None:
    with pytest.raises(ConfigError, match="meteor"):
        local_server.queue_faults(["http500", "meteor"])
    with pytest.raises(ConfigError):
        local_server.queue_faults([{"code": "4100"}])
    assert local_server.stats.faults == {}


# -- stats, logid, admin -----------------------------------------------------------------


async def test_stats_count_requests_billing_and_duplicates(local_server: LocalServer) -> None:
    before = time.monotonic()
    body = speech("同一句话。", response_format="wav")
    await post(local_server, body)
    await post(local_server, dict(reversed(body.items())))  # same body, other key order
    await post(local_server, speech("另一句。"))
    await post(local_server, speech(speed=9))
    stats = local_server.stats
    assert stats.requests == 4
    assert stats.audio_answers == 3
    assert stats.billed_characters == 5 + 5 + 4
    assert stats.by_input[body_key(body)] == 2 and sum(stats.by_input.values()) == 3
    assert len(stats.arrivals) == 4 and before <= stats.arrivals[0] <= stats.arrivals[-1]
    assert stats.max_in_flight == 1 and stats.in_flight == 0


async def test_every_answer_has_its_own_logid(local_server: LocalServer) -> None:
    answers = [
        await post(local_server, speech()),
        await post(local_server, speech(speed=9)),
        await post(local_server, speech(), headers={}),
        await get(local_server, "/v1/audio/voices"),
        await get(local_server, "/_local/stats"),
        await get(local_server, "/no/such/path"),
        await post(local_server, [], path="/_local/reset"),
    ]
    logids = [a.headers["X-Tt-Logid"] for a in answers]
    assert all(LOGID.match(logid) for logid in logids), logids
    assert len(set(logids)) == len(logids)


async def test_admin_routes(local_server: LocalServer) -> None:
    queued = await post(local_server, ["http500", {"code": 4200}], path="/_local/faults")
    assert queued.json() == {"queued": 2}
    assert (await post(local_server, speech())).status == 500
    assert (await post(local_server, speech())).status == 404
    refused = await post(local_server, ["meteor"], path="/_local/faults")
    assert "meteor" in assert_coze_error(refused, 4000, 400)["msg"]
    stats = (await get(local_server, "/_local/stats")).json()
    assert stats["requests"] == 2 and stats["faults"] == {"http500": 1, "code:4200": 1}
    local_server.queue_faults(["http500"])
    reset = (await post(local_server, {}, path="/_local/reset")).json()
    assert reset["requests"] == 0 and reset["faults"] == {}
    assert (await post(local_server, speech())).status == 200


# -- voices ------------------------------------------------------------------------------


async def test_voice_list_shape_and_pagination(local_server: LocalServer) -> None:
    pages = []
    for page in (1, 2, 3):
        answer = await get(local_server, f"/v1/audio/voices?page_size=2&page_num={page}")
        payload = answer.json()
        assert payload["code"] == 0 and payload["detail"]["logid"] == answer.headers["X-Tt-Logid"]
        pages.append(payload["data"])
    assert [p["has_more"] for p in pages] == [True, True, False]
    assert [len(p["voice_list"]) for p in pages] == [2, 2, 1]
    everything = [v for p in pages for v in p["voice_list"]]
    assert len({v["voice_id"] for v in everything}) == 5
    first = everything[0]
    assert first["voice_id"] == "local-tone-1" and first["language_code"] == "zh"
    assert first["support_emotions"][0]["emotion_scale_interval"] == {
        "min": 1,
        "max": 5,
        "default": 4,
    }
    expected_keys = {"name", "state", "model_type", "is_system_voice", "preview_audio"}
    assert expected_keys <= set(first)


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ("", 5),
        ("?filter_system_voice=true", 3),
        ("?model_type=small", 2),
        ("?voice_state=all&model_type=big", 3),
        ("?voice_state=init", 0),
    ],
)
async def test_voice_list_filters(local_server: LocalServer, query: str, count: int) -> None:
    answer = await get(local_server, "/v1/audio/voices" + query)
    assert len(answer.json()["data"]["voice_list"]) == count


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("page_size=0", "page_size"),
        ("page_size=101", "page_size"),
        ("page_num=0", "page_num"),
        ("model_type=huge", "model_type"),
        ("voice_state=ready", "voice_state"),
        ("filter_system_voice=maybe", "filter_system_voice"),
    ],
)
async def test_a_bad_voice_query_is_4000(local_server: LocalServer, query: str, name: str) -> None:
    answer = await get(local_server, "/v1/audio/voices?" + query)
    assert name in assert_coze_error(answer, 4000, 400)["msg"]


# -- running it --------------------------------------------------------------------------


async def test_synthesis_does_not_block_the_server(local_server: LocalServer) -> None:
    # About 100 s of 48 kHz mp3: several tenths of a second of LAME.
    big = speech("好" * 340, response_format="mp3", sample_rate=48000, speed=0.2)

    async def timed(coro: Any) -> float:
        started = time.monotonic()
        await coro
        return time.monotonic() - started

    slow = asyncio.ensure_future(timed(post(local_server, big)))
    await asyncio.sleep(0.1)
    quick = [await timed(get(local_server, "/v1/audio/voices")) for _ in range(3)]
    assert max(quick) < (await slow) / 4, (quick, slow.result())


async def test_running_server_on_the_current_loop() -> None:
    async with running_server(ServerConfig(engine="tone")) as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        assert (await post(server, speech())).status == 200
    with pytest.raises(RuntimeError):
        server.base_url  # noqa: B018


async def test_serve_forever_reports_its_url_and_stops_when_cancelled() -> None:
    urls: list[str] = []
    ready = asyncio.Event()

    def on_ready(url: str) -> None:
        urls.append(url)
        ready.set()

    task = asyncio.ensure_future(serve_forever(ServerConfig(), on_ready=on_ready))
    await ready.wait()
    async with aiohttp.ClientSession() as session:
        async with session.get(urls[0] + "/_local/stats") as response:
            assert response.status == 200
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(urls[0] + "/_local/stats")


def test_the_official_sdk_talks_to_it(local_server: LocalServer, tmp_path: Path) -> None:
    from cozepy import Coze, SyncHTTPClient, TokenAuth

    with SyncHTTPClient() as http:  # type: ignore[no-untyped-call]
        coze = Coze(auth=TokenAuth("any-token"), base_url=local_server.base_url, http_client=http)
        audio = coze.audio.speech.create(input=SHORT, voice_id="local-tone-2", sample_rate=16000)
        audio.write_to_file(str(tmp_path / "a.mp3"))
        # The SDK walks every page of 2 by itself.
        voices = [v.voice_id for v in coze.audio.voices.list(page_size=2)]
    rate, samples = decode((tmp_path / "a.mp3").read_bytes(), "mp3", 16000)
    assert rate == 16000 and len(samples) / rate == pytest.approx(tone_duration(SHORT), abs=0.03)
    assert voices == ["local-tone-1", "local-tone-2", "local-tone-3", "local-tone-4", _EXAMPLE]


def test_the_espeak_engine_is_imported_only_when_asked_for() -> None:
    code = (
        "import sys, pipeline.localserver as s; s.LocalServer(s.ServerConfig()); "
        "print('pipeline.localserver.espeak' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_an_unknown_engine_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="festival"):
        make_engine("festival")


async def test_the_espeak_engine_is_picked_by_name(make_server: MakeServer) -> None:
    server = make_server(engine="espeak")
    voices = (await get(server, "/v1/audio/voices?voice_state=all")).json()["data"]["voice_list"]
    assert "local-zh-female" in {v["voice_id"] for v in voices}
    answer = await post(
        server, speech("你好", voice_id="local-zh-female", response_format="pcm", sample_rate=16000)
    )
    assert answer.status == 200
    assert rms(np.frombuffer(answer.body, "<i2")) > 100
    assert_coze_error(await post(server, speech(voice_id="local-tone-1")), 4200, 404)
