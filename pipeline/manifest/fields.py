"""The one check and normal form of a speech field or ``pause_ms``, whichever file sets it."""

from __future__ import annotations

from typing import Any

import regex

from pipeline.manifest.model import FIT_MODES, MAX_PAUSE_MS, MAX_SPEED_RANGE
from pipeline.manifest.text import is_number
from pipeline.speech import check_field

# A language tag such as zh, en-US, zh_CN, yue: what normalisation and lexicon scopes read.
_LANGUAGE = regex.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*")


def check_value(name: str, value: object) -> str | None:
    """None when ``value`` is fine for ``name``, else the message saying why not."""
    if name == "fit":
        return None if value in FIT_MODES else f"fit must be one of {', '.join(FIT_MODES)}"
    if name == "max_speed":
        lo, hi = MAX_SPEED_RANGE
        if is_number(value) and lo <= value <= hi:  # type: ignore[operator]
            return None
        return f"max_speed must be a number from {lo:g} to {hi:g} (1.25 keeps speech natural)"
    if name == "normalize":
        return None if isinstance(value, bool) else "normalize must be true or false"
    if name == "language":
        if isinstance(value, str) and _LANGUAGE.fullmatch(value):
            return None
        return "language must be a language code such as zh, en or en-US"
    if name != "pause_ms":
        return check_field(name, value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_PAUSE_MS:
        return None
    return f"pause_ms must be a whole number of milliseconds from 0 to {MAX_PAUSE_MS}"


def normalise(name: str, value: Any) -> Any:
    """The value as the request carries it; None for a field that is as good as unset."""
    if name in ("speed", "emotion_scale", "max_speed") and is_number(value):
        return float(value)
    if name in ("emotion", "context_texts") and value == "":
        return None
    return value
