"""Neutral data every book and subtitle parser returns; a reader adapts it to the manifest.

A parser never decides speech fields: it reports what the source says (text, where it came
from, a speaker, cue times) and what it left out and why (``Skipped``), so that nothing is
dropped silently and ``plan`` can show the user every left-out piece.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class SourceLine:
    """One paragraph (or heading, or cue) to speak, with where it came from.

    ``file`` is what a message should name: a path, or ``book.epub!OEBPS/ch3.xhtml`` for a file
    inside an EPUB; ``line`` is the 1-based line in that file (None when unknown). ``fields``
    holds extra values the source knows per line (an ASS ``style``, a subtitle ``index``); the
    reader decides which of them become speech fields.
    """

    text: str
    file: str
    line: int | None
    speaker: str | None = None
    start_s: float | None = None
    end_s: float | None = None
    heading: bool = False
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SourceChapter:
    id: str
    title: str | None
    lines: tuple[SourceLine, ...]
    file: str
    line: int | None


@dataclass(frozen=True, slots=True)
class Skipped:
    """Text of the source that will not be spoken, and why (one per text piece)."""

    text: str
    reason: str
    file: str
    line: int | None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        excerpt = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        return f"{where}: not spoken ({self.reason}): {excerpt!r}"


@dataclass(frozen=True, slots=True)
class Cover:
    data: bytes
    media_type: str
    name: str


@dataclass(frozen=True, slots=True)
class BookInfo:
    """What the book says about itself (EPUB metadata); all None for a plain text."""

    title: str | None = None
    author: str | None = None
    language: str | None = None
    cover: Cover | None = None


@dataclass(frozen=True, slots=True)
class SourceBook:
    """A parsed source: its chapters in reading order, what was left out, and notes.

    ``notes`` are decisions the parser took that the user may want to know about (a spine file
    read as part of the chapter before it, a TOC entry with no text of its own).
    """

    file: str
    chapters: tuple[SourceChapter, ...]
    skipped: tuple[Skipped, ...] = ()
    notes: tuple[str, ...] = ()
    info: BookInfo = field(default_factory=BookInfo)


def chapter_ids(count: int, prefix: str = "ch") -> list[str]:
    """Ids by position (``ch01``...): stable, valid chapter ids whatever the titles are."""
    width = max(2, len(str(count)))
    return [f"{prefix}{n:0{width}d}" for n in range(1, count + 1)]
