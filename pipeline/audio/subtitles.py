"""SRT and WebVTT from a chapter's cues (one cue per part, i.e. per chunk)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from pipeline.audio.model import Cue

_BLANK_LINES = re.compile(r"\n\s*\n+")


def timestamp(ms: int, separator: str) -> str:
    """HH:MM:SS,mmm (SRT) or HH:MM:SS.mmm (VTT); hours grow past two digits when needed."""
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{millis:03d}"


def _text(text: str) -> str:
    # A blank line ends a cue in both formats: keep the text's line breaks, not its gaps.
    return _BLANK_LINES.sub("\n", text.strip().replace("\r\n", "\n")) or "…"


def to_srt(cues: Sequence[Cue]) -> str:
    blocks = [
        f"{i}\n{timestamp(c.start_ms, ',')} --> {timestamp(c.end_ms, ',')}\n{_text(c.text)}\n"
        for i, c in enumerate(cues, 1)
    ]
    return "\n".join(blocks)


def _vtt_text(text: str) -> str:
    escaped = _text(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return escaped


def to_vtt(cues: Sequence[Cue]) -> str:
    blocks = [
        f"{timestamp(c.start_ms, '.')} --> {timestamp(c.end_ms, '.')}\n{_vtt_text(c.text)}\n"
        for c in cues
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


RENDERERS = {"srt": to_srt, "vtt": to_vtt}
