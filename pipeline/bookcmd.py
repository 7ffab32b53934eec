"""``tts-pipeline book``: the job's book from chapter files already written (by shards).

Shard runs write no book (it would hold their chapters only); once every shard's chapter
files are in one directory, this builds ``output.book`` from them, with the job's tags. The
book is skipped when its record says it was built from the same chapter files and tags.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.audio import build_book
from pipeline.audio.fingerprint import (
    book_fingerprint,
    forget_output,
    is_up_to_date,
    record_output,
    sidecar_path,
)
from pipeline.errors import UsageError
from pipeline.finishing import output_name
from pipeline.planning import Plan
from pipeline.runner import OutputOptions


def _recorded_fingerprint(chapter: Path) -> str | None:
    """The fingerprint a run recorded for ``chapter``, when its file is still as recorded."""
    try:
        record = json.loads(sidecar_path(chapter).read_text(encoding="utf-8"))
        fingerprint = record["fingerprint"]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if not isinstance(fingerprint, str) or not is_up_to_date(chapter, fingerprint):
        return None
    return fingerprint


def build_job_book(plan: Plan, output: OutputOptions, out_dir: Path) -> tuple[Path, bool]:
    """Build ``output.book`` in ``out_dir`` from the chapter files there; (path, built)."""
    if output.book is None:
        raise UsageError("the job sets no output.book: name the book file there (book.m4b)")
    chapters: list[tuple[Path, str]] = []
    missing = []
    for cp in plan.chapters:
        path = out_dir / output_name(cp, output)
        if not path.is_file():
            missing.append(path.name)
        chapters.append((path, cp.chapter.title or cp.chapter.id))
    if missing:
        raise UsageError(
            f"{out_dir}: {len(missing)} chapter file(s) missing ({', '.join(missing[:5])}): run "
            "every shard into this directory (or copy their chapter files here) first"
        )
    book = out_dir / output.book
    fingerprints = [_recorded_fingerprint(path) for path, _ in chapters]
    fingerprint = None
    if all(f is not None for f in fingerprints):
        pairs = [(f or "", title) for f, (_, title) in zip(fingerprints, chapters, strict=True)]
        fingerprint = book_fingerprint(pairs, book, output.book_info)
        if is_up_to_date(book, fingerprint):
            return book, False
    forget_output(book)
    build_book(
        chapters,
        book,
        title=output.album,
        artist=output.artist,
        pcm_sample_rate=plan.chapters[0].sample_rate if plan.chapters else None,
        info=output.book_info,
    )
    if fingerprint is not None:
        record_output(book, fingerprint)
    return book, True
