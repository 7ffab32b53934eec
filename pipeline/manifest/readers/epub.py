"""EPUB books (``.epub``): one chapter per table-of-contents entry (see pipeline.books.epub)."""

from __future__ import annotations

from pathlib import Path

from pipeline.manifest.model import Source
from pipeline.manifest.readers import ReadContext
from pipeline.manifest.readers.book import book_source, parsed


def read(path: Path, context: ReadContext) -> Source:
    from pipeline.books.epub import EpubOptions, read_epub  # ebooklib: only for an EPUB

    options = EpubOptions(include=context.book.include, exclude=context.book.exclude)
    book = parsed(context, lambda: read_epub(Path(context.display), options))
    return Source(()) if book is None else book_source(book, context)
