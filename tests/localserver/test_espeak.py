"""The eSpeak NG engine speaks: real sound with a speech envelope, not silence or a tone."""

from __future__ import annotations

import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import anyio
import av
import numpy as np
import numpy.typing as npt
import pytest
from cozepy.audio.voices import Voice as CozeVoice

from pipeline.coze.client import ClientConfig, SpeechClient
from pipeline.localserver import LocalServer
from pipeline.localserver.espeak import (
    EMOTION_EFFECTS,
    RATE_LIMITS,
    VOICES,
    EspeakEngine,
    UnknownVoice,
    resample,
    resolve_voice,
    settings_for,
)
from pipeline.speech import EMOTIONS, SpeechParams, SpeechRequest

ZH = "你好，世界。"
EN = "Hello world. This is a short test of the local speech engine."
RATE = 24000

engine = EspeakEngine()

MakeServer = Callable[..., LocalServer]


def window_rms(samples: npt.NDArray[np.int16], rate: int, window_s: float = 0.02) -> npt.NDArray:
    size = int(rate * window_s)
    usable = len(samples) // size * size
    windows = samples[:usable].astype(np.float64).reshape(-1, size)
    return np.sqrt((windows**2).mean(axis=1))


def assert_speech(samples: npt.NDArray[np.int16], rate: int, min_seconds: float) -> None:
    """Long enough, loud enough, and with the ups and downs of words and pauses."""
    assert samples.dtype == np.int16 and samples.ndim == 1
    assert len(samples) / rate > min_seconds
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    assert rms > 500, f"RMS {rms:.0f}: close to silence"
    envelope = window_rms(samples, rate)
    quiet = np.mean(envelope < 0.1 * envelope.max())
    loud = np.mean(envelope > 0.2 * envelope.max())
    # A tone or noise is loud everywhere; speech has pauses between its words and phrases.
    assert quiet > 0.05, f"only {quiet:.0%} of 20 ms windows are quiet: no pauses"
    assert loud > 0.3, f"only {loud:.0%} of 20 ms windows are loud"


@pytest.mark.parametrize(
    ("voice_id", "text"),
    [
        ("local-zh-female", ZH),
        ("local-zh-male", ZH),
        ("local-en-female", EN),
        ("local-en-male", EN),
    ],
)
def test_each_voice_speaks(voice_id: str, text: str) -> None:
    assert_speech(engine.synthesize(text, voice_id, sample_rate=RATE), RATE, 0.5)


def test_longer_text_gives_longer_audio() -> None:
    short = engine.synthesize("Hello.", "local-en-female", sample_rate=RATE)
    long = engine.synthesize(EN, "local-en-female", sample_rate=RATE)
    assert len(long) > 2 * len(short)
    zh_long = engine.synthesize(ZH * 4, "local-zh-female", sample_rate=RATE)
    zh_short = engine.synthesize(ZH, "local-zh-female", sample_rate=RATE)
    assert len(zh_long) > 3 * len(zh_short)


@pytest.mark.parametrize("rate", [8000, 22050, 48000])
def test_sample_rate_keeps_the_duration(rate: int) -> None:
    reference = engine.synthesize(ZH, "local-zh-male", sample_rate=RATE)
    samples = engine.synthesize(ZH, "local-zh-male", sample_rate=rate)
    assert len(samples) / rate == pytest.approx(len(reference) / RATE, rel=0.01)
    assert_speech(samples, rate, 0.5)


def test_speed_changes_the_duration() -> None:
    normal = engine.synthesize(EN, "local-en-male", speed=1.0, sample_rate=RATE)
    fast = engine.synthesize(EN, "local-en-male", speed=2.0, sample_rate=RATE)
    slow = engine.synthesize(EN, "local-en-male", speed=0.6, sample_rate=RATE)
    assert len(fast) < 0.75 * len(normal) < 0.75 * len(slow)


def test_emotion_changes_the_output() -> None:
    def speak(emotion: str | None) -> npt.NDArray[np.int16]:
        return engine.synthesize(ZH, "local-zh-female", emotion=emotion, emotion_scale=5.0)

    neutral, happy, sad, angry = (speak(e) for e in (None, "happy", "sad", "angry"))
    assert len(sad) > 1.1 * len(neutral), "sad is slower"
    assert len(happy) < len(neutral), "happy is faster"

    def rms(s: npt.NDArray[np.int16]) -> float:
        return float(np.sqrt(np.mean(s.astype(np.float64) ** 2)))

    assert rms(angry) > 1.15 * rms(neutral), "angry is louder"
    assert rms(sad) < rms(neutral), "sad is quieter"


def test_emotion_scale_sets_the_strength() -> None:
    weak = settings_for(1.0, "sad", 1.0)
    strong = settings_for(1.0, "sad", 5.0)
    neutral = settings_for(1.0, None, None)
    assert strong.rate < weak.rate < neutral.rate
    assert strong.pitch < weak.pitch < neutral.pitch


def test_every_coze_emotion_has_an_effect() -> None:
    assert set(EMOTION_EFFECTS) == set(EMOTIONS)


def test_speed_is_clamped_to_espeak_range() -> None:
    assert settings_for(0.2, None, None).rate == RATE_LIMITS[0]
    assert settings_for(3.0, None, None).rate == RATE_LIMITS[1]
    assert settings_for(1.0, None, None).rate == 175


def test_unknown_voice_is_refused() -> None:
    assert not engine.has_voice("no-such-voice")
    with pytest.raises(UnknownVoice):
        engine.synthesize(ZH, "no-such-voice")


def test_numeric_coze_id_speaks_the_text_language() -> None:
    assert engine.has_voice("7426720361733144585")
    assert resolve_voice("7426720361733144585", ZH) == "local-zh-male"
    assert resolve_voice("7426720361733144584", EN) == "local-en-female"
    assert resolve_voice("local-en-male", ZH) == "local-en-male"
    assert_speech(engine.synthesize(ZH, "7426720361733144585", sample_rate=RATE), RATE, 0.5)


def test_voices_have_the_coze_shape() -> None:
    voices = engine.voices()
    assert [v["voice_id"] for v in voices] == [v.voice_id for v in VOICES]
    assert {"local-zh-female", "local-zh-male", "local-en-female", "local-en-male"} <= {
        v["voice_id"] for v in voices
    }
    for item in voices:
        CozeVoice.model_validate(item)  # the official SDK's model accepts every item
        assert item["model_type"] == "small"
        emotions = {e["emotion"] for e in item["support_emotions"]}
        assert emotions == set(EMOTIONS)
        interval = item["support_emotions"][0]["emotion_scale_interval"]
        assert (interval["min"], interval["max"]) == (1.0, 5.0)


def test_concurrent_use_is_serialised() -> None:
    """The C library has one global state: threads must each get their own whole utterance.

    eSpeak adds a little random variation, so a lone call is matched by length, not bytes.
    """
    jobs = [(ZH, "local-zh-female"), (EN, "local-en-male")] * 6
    alone = {v: len(engine.synthesize(t, v, sample_rate=RATE)) for t, v in jobs[:2]}
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda job: engine.synthesize(*job, sample_rate=RATE), jobs))
    for (_, voice_id), samples in zip(jobs, results, strict=True):
        assert len(samples) == pytest.approx(alone[voice_id], rel=0.01)
        assert_speech(samples, RATE, 0.5)


def test_resample_keeps_a_tone() -> None:
    t = np.arange(22050) / 22050
    tone = (np.sin(2 * np.pi * 440 * t) * 10000).astype(np.int16)
    out = resample(tone, 22050, 16000)
    assert abs(len(out) - 16000) <= 2
    spectrum = np.abs(np.fft.rfft(out.astype(np.float64)))
    peak_hz = np.argmax(spectrum) * 16000 / len(out)
    assert peak_hz == pytest.approx(440, abs=2)


def decode_mp3(data: bytes) -> tuple[npt.NDArray[np.int16], int]:
    with av.open(io.BytesIO(data), format="mp3") as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout="mono", rate=stream.rate)
        frames = [
            r.to_ndarray().reshape(-1)
            for frame in container.decode(stream)
            for r in resampler.resample(frame)
        ]
        return np.concatenate(frames), stream.rate


# ---------------------------------------------------------------------------------------------
# Through the local server


@pytest.mark.anyio
async def test_server_espeak_mp3_decodes_to_speech(make_server: MakeServer) -> None:
    server = make_server(engine="espeak")
    req = SpeechRequest(ZH, SpeechParams("local-zh-female", response_format="mp3"))
    async with SpeechClient(ClientConfig(base_url=server.base_url, token="t")) as client:
        result = await client.synthesize(req)
    assert result.content_type.startswith("audio/mpeg")
    samples, rate = decode_mp3(result.audio)
    assert rate == 24000
    assert_speech(samples, rate, 0.5)


@pytest.mark.anyio
async def test_server_espeak_concurrent_requests(make_server: MakeServer) -> None:
    server = make_server(engine="espeak")
    texts = [ZH, EN, ZH * 2, EN + " Again."] * 2
    results: dict[int, bytes] = {}

    async def speak(client: SpeechClient, index: int) -> None:
        voice = "local-zh-male" if "你" in texts[index] else "local-en-female"
        params = SpeechParams(voice, response_format="wav", sample_rate=16000)
        results[index] = (await client.synthesize(SpeechRequest(texts[index], params))).audio

    async with SpeechClient(ClientConfig(base_url=server.base_url, token="t")) as client:
        async with anyio.create_task_group() as group:
            for index in range(len(texts)):
                group.start_soon(speak, client, index)
    assert server.stats.audio_answers == len(texts)
    for index, wav in results.items():
        samples = np.frombuffer(wav[44:], dtype="<i2")
        assert_speech(samples, 16000, 0.5)
        assert wav[:4] == b"RIFF", index
