"""The official Python SDK (cozepy) works against the local server as it does against Coze."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import av
import pytest
from cozepy import AudioFormat, Coze, CozeAPIError, SyncHTTPClient, TokenAuth

from pipeline.localserver import LocalServer

MakeServer = Callable[..., LocalServer]
TOKEN = "pat_cozepy-compat-token"


def decoded_seconds(path: Path) -> tuple[float, int]:
    """Duration and rate of an audio file, by decoding every frame with PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.rate, stream.rate


CozeFor = Callable[..., Coze]


@pytest.fixture
def coze_for() -> Iterator[CozeFor]:
    """``coze_for(server, token=TOKEN)`` -> a sync SDK client; its connections close after."""
    with ExitStack() as stack:

        def make(server: LocalServer, token: str = TOKEN) -> Coze:
            http = stack.enter_context(SyncHTTPClient())
            return Coze(auth=TokenAuth(token), base_url=server.base_url, http_client=http)

        yield make


@pytest.mark.parametrize(
    ("fmt", "suffix", "rate"),
    [(AudioFormat.MP3, "mp3", 24000), (AudioFormat.WAV, "wav", 16000)],
)
def test_speech_create_writes_a_file_that_decodes(
    make_server: MakeServer,
    coze_for: CozeFor,
    tmp_path: Path,
    fmt: AudioFormat,
    suffix: str,
    rate: int,
) -> None:
    server = make_server(token=TOKEN)
    speech = coze_for(server).audio.speech.create(
        input="你好，世界。今天天气很好。",
        voice_id="local-tone-1",
        response_format=fmt,
        sample_rate=rate,
    )
    out = tmp_path / f"out.{suffix}"
    speech.write_to_file(str(out))
    seconds, decoded_rate = decoded_seconds(out)
    assert seconds > 0.5
    assert decoded_rate == rate
    assert server.stats.audio_answers == 1


def test_speech_with_the_espeak_engine(
    make_server: MakeServer, coze_for: CozeFor, tmp_path: Path
) -> None:
    server = make_server(engine="espeak")
    speech = coze_for(server).audio.speech.create(
        input="Hello from the local server.", voice_id="local-en-female", speed=1.2
    )
    out = tmp_path / "espeak.mp3"
    speech.write_to_file(str(out))
    seconds, _ = decoded_seconds(out)
    assert seconds > 0.5


def test_voices_list(make_server: MakeServer, coze_for: CozeFor) -> None:
    server = make_server(token=TOKEN)
    voices = list(coze_for(server).audio.voices.list())
    assert voices, "the SDK saw no voice"
    ids = {v.voice_id for v in voices}
    assert "local-tone-1" in ids
    assert all(v.name and v.language_code for v in voices)


def test_voices_list_espeak(make_server: MakeServer, coze_for: CozeFor) -> None:
    server = make_server(engine="espeak")
    voices = {v.voice_id: v for v in coze_for(server).audio.voices.list()}
    assert {"local-zh-female", "local-zh-male", "local-en-female", "local-en-male"} <= set(voices)
    assert voices["local-en-male"].language_code == "en"


def test_bad_token_raises_coze_api_error_4100(make_server: MakeServer, coze_for: CozeFor) -> None:
    server = make_server(token=TOKEN)
    coze = coze_for(server, token="pat_wrong")
    with pytest.raises(CozeAPIError) as caught:
        coze.audio.speech.create(input="你好", voice_id="local-tone-1")
    assert caught.value.code == 4100
    assert caught.value.logid
    with pytest.raises(CozeAPIError) as listed:
        list(coze.audio.voices.list())
    assert listed.value.code == 4100
    assert server.stats.audio_answers == 0


def test_sdk_sees_injected_errors(make_server: MakeServer, coze_for: CozeFor) -> None:
    server = make_server()
    server.queue_faults(["json200", {"code": 4200, "http_status": 404}])
    coze = coze_for(server)
    for code in (5000, 4200):
        with pytest.raises(CozeAPIError) as caught:
            coze.audio.speech.create(input="你好", voice_id="local-tone-1")
        assert caught.value.code == code
