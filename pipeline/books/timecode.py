"""Cue times as written in CSV ``start``/``end`` columns: ``HH:MM:SS,mmm``, ``HH:MM:SS.mmm``
(``MM:SS.mmm`` and a missing fraction too) or plain seconds (``12.5``)."""

from __future__ import annotations

import math
import re

_CLOCK = re.compile(r"(?:(\d+):)?([0-5]?\d):([0-5]?\d)(?:[.,](\d{1,3}))?")
_SECONDS = re.compile(r"\d+(?:\.\d*)?|\.\d+")


class TimecodeError(ValueError):
    """A time that is not one of the accepted forms; the message says which ones are."""


def parse_timecode(value: str | int | float) -> float:
    """Seconds (>= 0) for ``value``; ``TimecodeError`` with the accepted forms otherwise."""
    if isinstance(value, bool):
        raise TimecodeError(f"bad time {value!r}: want HH:MM:SS,mmm, HH:MM:SS.mmm or seconds")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise TimecodeError(f"bad time {value!r}: want a number of seconds from 0")
        return float(value)
    text = value.strip()
    if _SECONDS.fullmatch(text):
        return float(text)
    match = _CLOCK.fullmatch(text)
    if match is None:
        raise TimecodeError(
            f"bad time {value!r}: want HH:MM:SS,mmm, HH:MM:SS.mmm or seconds (12.5)"
        )
    hours, minutes, seconds, fraction = match.groups()
    millis = int((fraction or "0").ljust(3, "0"))
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + millis / 1000
