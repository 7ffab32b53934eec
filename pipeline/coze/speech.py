"""The Coze speech contract: fields, enums, ranges and their validation.

One validator serves three callers: the client (before sending), the manifest loader (per
field, with file and line) and the local server (on the raw JSON it receives), so that all
three refuse exactly the same things with the same words.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from pipeline.formats import FILE_EXTENSIONS as FILE_EXTENSIONS
from pipeline.formats import FORMATS as FORMATS

MAX_INPUT_BYTES = 1024
SAMPLE_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
EMOTIONS = (
    "happy",
    "sad",
    "angry",
    "surprised",
    "fear",
    "hate",
    "excited",
    "coldness",
    "neutral",
)
# The spec's widest range (small-model voices); big-model voices take 0.5 to 2.
SPEED_RANGE = (0.2, 3.0)
EMOTION_SCALE_RANGE = (1.0, 5.0)
LOUDNESS_RANGE = (-50, 100)

DEFAULT_FORMAT = "mp3"
DEFAULT_SAMPLE_RATE = 24000
DEFAULT_SPEED = 1.0
DEFAULT_EMOTION_SCALE = 4.0
DEFAULT_LOUDNESS_RATE = 0

# Opus codes only these rates; an ogg_opus answer for another rate decodes at the next one up.
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


SPEECH_FIELDS = (
    "input",
    "voice_id",
    "emotion",
    "emotion_scale",
    "response_format",
    "speed",
    "sample_rate",
    "loudness_rate",
    "context_texts",
)


def opus_rate(sample_rate: int) -> int:
    """The rate an Ogg Opus answer for ``sample_rate`` decodes at."""
    return next((r for r in OPUS_RATES if r >= sample_rate), OPUS_RATES[-1])


def is_number(value: object) -> bool:
    """A finite int or float; a bool is not a number here, though Python says it is one."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _range_text(lo: float, hi: float) -> str:
    return f"{lo:g} to {hi:g}"


def check_field(name: str, value: object) -> str | None:
    """Why ``value`` is not allowed for the body field ``name``, or None when it is.

    ``None`` means "not set" and is allowed for every optional field.
    """
    if value is None:
        return f"{name} is required" if name in ("input", "voice_id") else None
    if name == "input":
        if not isinstance(value, str):
            return "input must be a string"
        if not value.strip():
            return "input is empty"
        size = len(value.encode("utf-8"))
        if size > MAX_INPUT_BYTES:
            return f"input is {size} UTF-8 bytes, over the limit of {MAX_INPUT_BYTES}"
        return None
    if name in ("voice_id", "context_texts"):
        if not isinstance(value, str):
            return f"{name} must be a string"
        if name == "voice_id" and not value.strip():
            return "voice_id is empty"
        return None
    if name == "emotion":
        if value == "":
            return None
        if value not in EMOTIONS:
            return f"emotion {value!r} is not one of {', '.join(EMOTIONS)}"
        return None
    if name == "response_format":
        if value not in FORMATS:
            return f"response_format {value!r} is not one of {', '.join(FORMATS)}"
        return None
    if name == "sample_rate":
        if isinstance(value, bool) or not isinstance(value, int) or value not in SAMPLE_RATES:
            allowed = ", ".join(str(r) for r in SAMPLE_RATES)
            return f"sample_rate {value!r} is not one of {allowed}"
        return None
    if name in ("speed", "emotion_scale"):
        lo, hi = SPEED_RANGE if name == "speed" else EMOTION_SCALE_RANGE
        if not is_number(value):
            return f"{name} must be a number from {_range_text(lo, hi)}"
        assert isinstance(value, int | float)
        if not lo <= value <= hi:
            return f"{name} {value:g} is out of range {_range_text(lo, hi)}"
        return None
    if name == "loudness_rate":
        lo_i, hi_i = LOUDNESS_RANGE
        if isinstance(value, bool) or not isinstance(value, int):
            return f"loudness_rate must be a whole number from {lo_i} to {hi_i}"
        if not lo_i <= value <= hi_i:
            return f"loudness_rate {value} is out of range {lo_i} to {hi_i}"
        return None
    return f"unknown field {name!r}"


def check_body(body: Mapping[str, Any]) -> list[str]:
    """Every problem of a raw request body, unknown keys included, in field order."""
    problems = [f"unknown field {k!r}" for k in body if k not in SPEECH_FIELDS]
    for name in SPEECH_FIELDS:
        message = check_field(name, body.get(name))
        if message:
            problems.append(message)
    return problems


@dataclass(frozen=True)
class SpeechParams:
    """Everything the API takes for one request, except the text.

    Unset (None) fields are left out of the request body, so the server's defaults apply.
    """

    voice_id: str
    emotion: str | None = None
    emotion_scale: float | None = None
    response_format: str | None = None
    speed: float | None = None
    sample_rate: int | None = None
    loudness_rate: int | None = None
    context_texts: str | None = None

    @property
    def format(self) -> str:
        return self.response_format or DEFAULT_FORMAT

    @property
    def rate(self) -> int:
        return self.sample_rate or DEFAULT_SAMPLE_RATE

    def problems(self) -> list[str]:
        return [
            m for f in fields(self) if (m := check_field(f.name, getattr(self, f.name))) is not None
        ]

    def body(self, text: str) -> dict[str, Any]:
        """The JSON body for ``text``, with unset fields left out."""
        out: dict[str, Any] = {"input": text}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and value != "":
                out[f.name] = value
        return out


@dataclass(frozen=True)
class SpeechRequest:
    """One request: a text and its parameters."""

    text: str
    params: SpeechParams = field()

    def problems(self) -> list[str]:
        found = self.params.problems()
        text_problem = check_field("input", self.text)
        return ([text_problem] if text_problem else []) + found

    def body(self) -> dict[str, Any]:
        return self.params.body(self.text)
