"""The speech contract: field validation and request bodies."""

import pytest

from pipeline.speech import (
    MAX_INPUT_BYTES,
    SpeechParams,
    SpeechRequest,
    check_body,
    check_field,
    opus_rate,
)


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("speed", 9, "speed 9 is out of range 0.2 to 3"),
        ("speed", "fast", "speed must be a number"),
        ("speed", float("nan"), "speed must be a number"),
        ("sample_rate", 12345, "sample_rate 12345 is not one of"),
        ("sample_rate", 24000.0, "sample_rate 24000.0 is not one of"),
        ("sample_rate", True, "sample_rate True is not one of"),
        ("emotion", "joy", "emotion 'joy' is not one of"),
        ("input", "x" * (MAX_INPUT_BYTES + 1), "input is 1025 UTF-8 bytes"),
        ("input", "  ", "input is empty"),
        ("voice_id", None, "voice_id is required"),
        ("emotion_scale", 0.5, "emotion_scale 0.5 is out of range 1 to 5"),
        ("loudness_rate", 101, "loudness_rate 101 is out of range -50 to 100"),
        ("loudness_rate", 1.5, "loudness_rate must be a whole number"),
        ("response_format", "flac", "response_format 'flac' is not one of"),
    ],
)
def test_check_field_names_the_field(name: str, value: object, fragment: str) -> None:
    message = check_field(name, value)
    assert message is not None
    assert fragment in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("speed", 0.2),
        ("speed", 3),
        ("sample_rate", 44100),
        ("emotion", "coldness"),
        ("emotion", ""),
        ("emotion_scale", 5),
        ("loudness_rate", -50),
        ("input", "你" * 341),  # 1023 bytes
        ("context_texts", "用低沉沙哑的语气说"),
        ("emotion", None),
    ],
)
def test_check_field_accepts_the_documented_values(name: str, value: object) -> None:
    assert check_field(name, value) is None


def test_exactly_1024_bytes_is_allowed() -> None:
    assert check_field("input", "a" * 1024) is None
    assert check_field("input", "é" * 512) is None
    assert check_field("input", "é" * 512 + "a") is not None


def test_body_leaves_out_unset_fields() -> None:
    params = SpeechParams(voice_id="v1", speed=1.5, emotion="")
    assert SpeechRequest("hi", params).body() == {"input": "hi", "voice_id": "v1", "speed": 1.5}


def test_body_has_every_field_when_set() -> None:
    params = SpeechParams(
        voice_id="v",
        emotion="sad",
        emotion_scale=2.0,
        response_format="wav",
        speed=0.8,
        sample_rate=16000,
        loudness_rate=-10,
        context_texts="slowly",
    )
    body = SpeechRequest("hi", params).body()
    assert set(body) == {
        "input",
        "voice_id",
        "emotion",
        "emotion_scale",
        "response_format",
        "speed",
        "sample_rate",
        "loudness_rate",
        "context_texts",
    }
    assert check_body(body) == []


def test_check_body_reports_unknown_and_missing_fields() -> None:
    problems = check_body({"input": "hi", "voice": "x"})
    assert "unknown field 'voice'" in problems
    assert "voice_id is required" in problems


def test_request_problems_cover_text_and_params() -> None:
    request = SpeechRequest("", SpeechParams(voice_id="v", speed=9))
    problems = request.problems()
    assert any("input" in p for p in problems)
    assert any("speed" in p for p in problems)


def test_opus_rate_rounds_up_to_a_codec_rate() -> None:
    assert opus_rate(22050) == 24000
    assert opus_rate(32000) == 48000
    assert opus_rate(44100) == 48000
    assert opus_rate(8000) == 8000
    assert opus_rate(16000) == 16000
