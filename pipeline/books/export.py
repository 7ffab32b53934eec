"""A parsed source as an editable job (``tts-pipeline import BOOK -o job.yaml``).

The YAML is the manifest format users already write: chapters with ids, titles and lines, so
that they can correct a book before paying for it. What was left out is listed in the header
comment (counted by reason) with the parser's notes. Keys the manifest does not read yet are
written only when a source has them: ``speaker`` (cast) and ``start``/``end`` (subtitle cues).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import yaml

from pipeline.books.model import SourceBook, SourceLine
from pipeline.manifest.fields import check_value


def _line(line: SourceLine) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "index" in line.fields:
        out["id"] = f"cue-{line.fields['index']:04d}"
    if line.speaker is not None:
        out["speaker"] = line.speaker
    if line.start_s is not None:
        out["start"] = round(line.start_s, 3)
    if line.end_s is not None:
        out["end"] = round(line.end_s, 3)
    out["text"] = line.text
    return out


def manifest_dict(
    book: SourceBook, voice_id: str | None = None, cover: str | None = None
) -> dict[str, Any]:
    """The manifest mapping for ``book``; ``voice_id`` goes into ``defaults`` when given.

    What the book says about itself goes into ``book:`` (``cover`` is the path of its image
    written beside the job, when there is one) and its language into ``language:``.
    """
    chapters = []
    for chapter in book.chapters:
        entry: dict[str, Any] = {"id": chapter.id}
        if chapter.title:
            entry["title"] = chapter.title
        entry["lines"] = [_line(x) for x in chapter.lines]
        chapters.append(entry)
    out: dict[str, Any] = {}
    info = book.info
    meta = {k: v for k, v in (("title", info.title), ("author", info.author),
                              ("cover", cover)) if v}
    if meta:
        out["book"] = meta
    if info.language and check_value("language", info.language) is None:
        out["language"] = info.language
    if voice_id:
        out["defaults"] = {"voice_id": voice_id}
    out["chapters"] = chapters
    return out


def _header(book: SourceBook) -> list[str]:
    info = book.info
    lines = [f"Imported from {book.file}: {len(book.chapters)} chapters."]
    described = [f"{k}: {v}" for k, v in (("title", info.title), ("author", info.author),
                                             ("language", info.language)) if v]
    if described:
        lines.append("Book " + ", ".join(described) + ".")
    reasons = Counter(s.reason for s in book.skipped)
    if reasons:
        lines.append("Not spoken (edit the lines below to change what is said):")
        lines += [f"  {count} x {reason}" for reason, count in sorted(reasons.items())]
    lines += [f"Note: {note}" for note in book.notes]
    return lines


def job_yaml(book: SourceBook, voice_id: str | None = None, cover: str | None = None) -> str:
    """The whole job file text: a header comment, then the manifest."""
    header = "".join(f"# {line}\n" for line in _header(book))
    body = yaml.safe_dump(manifest_dict(book, voice_id, cover), allow_unicode=True,
                          sort_keys=False, width=100)
    return header + body
