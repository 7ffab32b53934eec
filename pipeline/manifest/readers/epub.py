"""EPUB books (``.epub``): one chapter per table-of-contents entry (see pipeline.books.epub)."""

from __future__ import annotations

from pathlib import Path

from pipeline.manifest.model import Source
from pipeline.manifest.readers import ReadContext
from pipeline.manifest.readers.book import read_book_source


def read(path: Path, context: ReadContext) -> Source:
    del path  # read under the name the user gave, so that problems quote it
    return read_book_source(context)
