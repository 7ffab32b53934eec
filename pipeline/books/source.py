"""A book file (``.epub``, ``.txt``) parsed by its suffix, with the job's chapter choice applied.

``import`` writes the result as an editable job; the manifest's book readers adapt it to
chapters. ``include``/``exclude`` work the same for both formats (see ``epub.select``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from pipeline.books.model import SourceBook
from pipeline.errors import ManifestError, Problem

BOOK_SUFFIXES = (".epub", ".txt")


def read_book(
    path: Path,
    *,
    include: Sequence[str | int] = (),
    exclude: Sequence[str | int] = (),
    heading: str | None = None,
    preface: str = "chapter",
) -> SourceBook:
    """``path`` parsed; ``ManifestError`` naming the file for a bad, refused or unknown one."""
    suffix = path.suffix.lower()
    if suffix == ".epub":
        from pipeline.books.epub import EpubOptions, read_epub

        return read_epub(path, EpubOptions(include=tuple(include), exclude=tuple(exclude)))
    if suffix != ".txt":
        raise ManifestError(
            [
                Problem(
                    str(path), None, f"not a book: a book file ends in {' or '.join(BOOK_SUFFIXES)}"
                )
            ]
        )
    from pipeline.books.text import TextBookOptions, read_text_book

    book = read_text_book(path, TextBookOptions(heading=heading, preface=preface))
    if not include and not exclude:
        return book
    from pipeline.books.epub import select  # the same include/exclude rules as an EPUB's

    kept, dropped = select(book.chapters, include, exclude, book.file)
    return replace(book, chapters=tuple(kept), skipped=book.skipped + tuple(dropped))


def no_chapters(book: SourceBook) -> str:
    """The problem of a book with no chapter left: what was left out, and why."""
    reasons = Counter(s.reason for s in book.skipped)
    said = "; ".join(f"{n} x {reason}" for reason, n in reasons.most_common(5))
    if not said:
        return "no chapters: the book has no text to speak"
    return f"no chapters: every text was left out ({said})"
