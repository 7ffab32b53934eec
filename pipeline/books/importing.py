"""``tts-pipeline import BOOK -o job.yaml``: a book written out as an editable job file.

The job is written whole or not at all, and never over an existing file unless asked
(``force``); an existing symlink is replaced, never followed. An EPUB's cover is written
beside the job (``<job stem>.cover.jpg`` or ``.png``) so that the job's ``book.cover`` names it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.books.export import job_yaml
from pipeline.books.model import SourceBook
from pipeline.books.source import no_chapters, read_book
from pipeline.errors import ManifestError, Problem, UsageError
from pipeline.fileio import atomic_write_bytes, atomic_write_text

_COVER_SUFFIXES = {"image/jpeg": ".jpg", "image/png": ".png"}


@dataclass(frozen=True)
class Imported:
    book: SourceBook
    job: Path
    cover: Path | None


def import_book(
    source: Path,
    out: Path,
    *,
    force: bool = False,
    voice_id: str | None = None,
    include: Sequence[str | int] = (),
    exclude: Sequence[str | int] = (),
    heading: str | None = None,
    preface: str = "chapter",
) -> Imported:
    """Parse ``source`` and write it to ``out`` as a job; ``UsageError`` if ``out`` exists."""
    book = read_book(source, include=include, exclude=exclude, heading=heading, preface=preface)
    if not book.chapters:
        raise ManifestError([Problem(book.file, None, no_chapters(book))])
    cover = book.info.cover
    cover_path = None
    if cover is not None and cover.media_type in _COVER_SUFFIXES:
        cover_path = out.with_name(f"{out.stem}.cover{_COVER_SUFFIXES[cover.media_type]}")
    for path in (out, cover_path):
        if path is not None and os.path.lexists(path) and not force:
            raise UsageError(f"{path} exists: pass --force to overwrite it")
    if cover is not None and cover_path is not None:
        atomic_write_bytes(cover_path, cover.data)
    text = job_yaml(book, voice_id, cover_path.name if cover_path is not None else None)
    atomic_write_text(out, text)
    return Imported(book, out, cover_path)
