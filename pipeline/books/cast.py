"""A cast (speaker name -> speech fields) and the split of a paragraph into narration and
quoted dialogue, for ``dialogue: SPEAKER`` in book chapters.

Quotes recognised: “…”, 「…」 (with 『…』 inside), "…" and ‘…’ (a ’ followed by a letter is an
apostrophe, not a closing quote). The quote marks stay with the dialogue text. An opening
quote with no closing one runs to the end of the paragraph: novels leave a quote open when it
goes on in the next paragraph. Narration with no letter or digit between or around quotes
(``“Hi,” “Bye.”`` or a dash) is kept with its neighbour, so no part is empty or mere
punctuation; neighbouring parts of the same kind are joined, so the text of the parts is the
paragraph itself, cut at most once per quote boundary.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pipeline.errors import ManifestError, Problem
from pipeline.speech import check_field

# Fields a speaker may set. The format and rate belong to the chapter: one file, one format.
CAST_FIELDS = ("voice_id", "emotion", "emotion_scale", "speed", "loudness_rate", "context_texts")
CAST_KEYS = (*CAST_FIELDS, "language")
_CHAPTER_ONLY = ("response_format", "sample_rate")
_PAIRS = {"“": "”", "「": "」", '"': '"', "‘": "’", "『": "』"}
_SPOKEN = re.compile(r"\w")


@dataclass(frozen=True)
class Cast:
    """Speaker name -> the fields its lines take (over the chapter's, under the line's own)."""

    members: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def lookup(self, speaker: str | None) -> Mapping[str, Any] | None:
        """The fields of ``speaker``: an exact name first, else a unique case-insensitive one."""
        if speaker is None:
            return None
        if speaker in self.members:
            return self.members[speaker]
        folded = [k for k in self.members if k.casefold() == speaker.strip().casefold()]
        return self.members[folded[0]] if len(folded) == 1 else None


def _member_problems(name: Any, fields: Any, file: str, line: int | None) -> list[Problem]:
    if not isinstance(name, str) or not name.strip():
        return [Problem(file, line, f"a cast name must be text, not {name!r}")]
    if not isinstance(fields, Mapping):
        return [Problem(file, line, f"cast {name!r}: want a mapping of speech fields")]
    problems = []
    for key, value in fields.items():
        message: str | None
        if key in _CHAPTER_ONLY:
            message = f"{key} is set per chapter or job, not per speaker (one file, one format)"
        elif key == "language":
            message = None if isinstance(value, str) and value.strip() else "language is text"
        elif key not in CAST_FIELDS:
            message = f"unknown field {key!r}: use {', '.join(CAST_KEYS)}"
        else:
            message = check_field(key, value)
        if message:
            problems.append(Problem(file, line, f"cast {name!r}: {message}"))
    return problems


def load_cast(
    data: Any, file: str, lines: Mapping[str, int] | None = None, line: int | None = None
) -> Cast:
    """A ``cast:`` mapping, checked with the speech contract's own validator.

    ``lines`` gives each name's line in ``file`` when the caller knows it (from YAML marks);
    ``line`` is the fallback. Every problem is reported at once.
    """
    if not isinstance(data, Mapping):
        raise ManifestError([Problem(file, line, "cast: want a mapping of name -> fields")])
    problems: list[Problem] = []
    for name, fields in data.items():
        where = (lines or {}).get(name, line) if isinstance(name, str) else line
        problems += _member_problems(name, fields, file, where)
    if problems:
        raise ManifestError(problems)
    members = {name: MappingProxyType(dict(fields)) for name, fields in data.items()}
    return Cast(MappingProxyType(members))


@dataclass(frozen=True, slots=True)
class Part:
    text: str
    dialogue: bool


def _close(text: str, start: int) -> int:
    """The index just past the quote opened at ``start`` (the end of the text if unclosed)."""
    opener = text[start]
    closer = _PAIRS[opener]
    depth = 0
    for i in range(start + 1, len(text)):
        ch = text[i]
        if ch == opener and opener != closer:
            depth += 1
        elif ch == closer:
            apostrophe = closer == "’" and i + 1 < len(text) and text[i + 1].isalnum()
            if apostrophe:
                continue
            if depth == 0:
                return i + 1
            depth -= 1
    return len(text)


def _spans(text: str) -> list[tuple[int, int, bool]]:
    spans: list[tuple[int, int, bool]] = []
    i = start = 0
    while i < len(text):
        if text[i] in _PAIRS and text[i] != "』":
            if i > start:
                spans.append((start, i, False))
            end = _close(text, i)
            spans.append((i, end, True))
            i = start = end
        else:
            i += 1
    if start < len(text):
        spans.append((start, len(text), False))
    return spans


def split_dialogue(text: str) -> list[Part]:
    """``text`` cut into narration and dialogue (see the module); no part is empty."""
    merged: list[list[Any]] = []  # [start, end, quoted], contiguous over the text
    pending: int | None = None  # start of leading narration with nothing to say
    for start, end, quoted in _spans(text):
        if pending is not None:
            start, pending = pending, None
        if not quoted and not _SPOKEN.search(text[start:end]):
            if merged:
                merged[-1][1] = end
            else:
                pending = start
            continue
        if merged and merged[-1][2] == quoted:
            merged[-1][1] = end
        else:
            merged.append([start, end, quoted])
    if pending is not None:  # the whole text is punctuation
        merged.append([pending, len(text), False])
    return [Part(text[s:e].strip(), q) for s, e, q in merged if text[s:e].strip()]
