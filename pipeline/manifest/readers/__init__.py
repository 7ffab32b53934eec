"""Source readers, one module per format, registered by file suffix in ``READERS``.

A reader is a function ``read(path, context) -> Source``: it reports every problem it finds
through ``context.problem`` and yields neutral ``SourceChapter``s; the resolver does the rest
(ids, inheritance, the command line). Adding a source format is one module and one line in
``READERS`` (a ``"module:function"`` string, imported only when a file of that suffix is read,
or the function itself).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

# Suffixes whose reader takes the job file's book options (include, exclude, ...).
from pipeline.books.source import BOOK_SUFFIXES as BOOK_SUFFIXES
from pipeline.manifest.model import EMPTY_LAYER, BookOptions, Layer, Source
from pipeline.manifest.text import display


class ProblemSink(Protocol):
    def __call__(self, file: str, line: int | None, message: str) -> None: ...


@dataclass(frozen=True)
class ReadContext:
    """What a reader gets besides the path.

    ``outer`` holds the fields of every layer around the file (the command line's voice, a
    job file's defaults); a reader puts its own defaults and chapter fields on top.
    ``named_by`` is the job file that named this manifest (None for the file given by the
    user); a reader refuses job-only sections in a named manifest. ``book`` says how a book
    source is read (the job file's ``include``, ``exclude``, ``heading``, ``preface``).
    """

    problem: ProblemSink
    display: str
    outer: Layer = EMPTY_LAYER
    named_by: str | None = None
    book: BookOptions = BookOptions()

    def nested(self, path: Path, outer: Layer, named_by: str) -> ReadContext:
        return replace(self, display=display(path), outer=outer, named_by=named_by)


class Reader(Protocol):
    def __call__(self, path: Path, context: ReadContext) -> Source: ...


# The registry: suffix (lower case, with its dot) -> reader. Order is the order in messages.
READERS: dict[str, str | Reader] = {
    ".yaml": "pipeline.manifest.readers.yaml:read",
    ".yml": "pipeline.manifest.readers.yaml:read",
    ".csv": "pipeline.manifest.readers.csv:read",
    ".srt": "pipeline.manifest.readers.subtitles:read",
    ".vtt": "pipeline.manifest.readers.subtitles:read",
    ".ass": "pipeline.manifest.readers.subtitles:read",
    ".ssa": "pipeline.manifest.readers.subtitles:read",
    ".epub": "pipeline.manifest.readers.epub:read",
    ".txt": "pipeline.manifest.readers.txt:read",
}


def reader_for(path: Path) -> Reader | None:
    """The reader registered for ``path``'s suffix (case-insensitive), or None."""
    entry = READERS.get(path.suffix.lower())
    if entry is None or not isinstance(entry, str):
        return entry
    module, _, name = entry.partition(":")
    found: Reader = getattr(importlib.import_module(module), name)
    return found


def suffix_list() -> str:
    """``.yaml, .yml or .csv``: the registered suffixes, for messages."""
    names = list(READERS)
    if len(names) < 2:
        return "".join(names)
    return f"{', '.join(names[:-1])} or {names[-1]}"


def read_source(path: Path, context: ReadContext) -> Source | None:
    """Read ``path`` with its registered reader; None (after no problem) if there is none."""
    reader = reader_for(path)
    return reader(path, context) if reader is not None else None
