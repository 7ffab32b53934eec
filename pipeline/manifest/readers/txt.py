"""Plain-text books (``.txt``): chapters found by heading lines (see pipeline.books.text)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pipeline.books.model import SourceBook
from pipeline.books.text import TextBookOptions, read_text_book
from pipeline.manifest.model import BookOptions, Source
from pipeline.manifest.readers import ReadContext
from pipeline.manifest.readers.book import book_source, parsed


def read(path: Path, context: ReadContext) -> Source:
    options = TextBookOptions(heading=context.book.heading, preface=context.book.preface)
    book = parsed(context, lambda: _read(Path(context.display), options, context.book))
    return Source(()) if book is None else book_source(book, context)


def _read(path: Path, options: TextBookOptions, chosen: BookOptions) -> SourceBook:
    book = read_text_book(path, options)
    if not chosen.include and not chosen.exclude:
        return book
    from pipeline.books.epub import select  # the same include/exclude rules as an EPUB's

    kept, dropped = select(book.chapters, chosen.include, chosen.exclude, book.file)
    return replace(book, chapters=tuple(kept), skipped=book.skipped + tuple(dropped))
