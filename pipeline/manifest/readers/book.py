"""The adapter from a book parser's ``SourceBook`` (pipeline.books) to the manifest's chapters.

A book reader (``epub``, ``txt``) is: parse with a ``pipeline.books`` function inside
``parsed`` (which forwards a ``ManifestError``'s problems to the context), then
``book_source`` the result. A new parsed format (subtitles, say) writes the same two lines
with its own parser and adds its ``READERS`` line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from pipeline.books.model import SourceBook
from pipeline.books.model import SourceChapter as BookChapter
from pipeline.books.source import no_chapters
from pipeline.errors import ManifestError
from pipeline.manifest.model import BookMeta, Layer, Source, SourceChapter, SourceLine
from pipeline.manifest.readers import ReadContext


def read_book_source(context: ReadContext) -> Source:
    """The book ``context.display`` names, read with the job file's ``context.book`` options."""
    from pipeline.books.source import read_book  # the parsers import their libraries

    o = context.book
    book = parsed(
        context,
        lambda: read_book(
            Path(context.display),
            include=o.include,
            exclude=o.exclude,
            heading=o.heading,
            preface=o.preface,
        ),
    )
    return Source(()) if book is None else book_source(book, context)


def parsed(context: ReadContext, parse: Callable[[], SourceBook]) -> SourceBook | None:
    """``parse()``, or None after forwarding its problems to ``context``."""
    try:
        return parse()
    except ManifestError as e:
        for p in e.problems:
            context.problem(p.file, p.line, p.message)
        return None


def book_source(book: SourceBook, context: ReadContext) -> Source:
    """The manifest ``Source`` of a parsed book: its chapters under ``context.outer``.

    The book's language (EPUB metadata) sits under every layer the user wrote; its title,
    author, language and cover are the defaults of the job's ``book:``. A book with no
    chapter is a problem that says what was left out and why.
    """
    info = book.info
    own = Layer({"language": info.language}) if info.language else Layer({})
    fields = own.then(context.outer)
    if not book.chapters:
        context.problem(context.display, None, no_chapters(book))
    meta = None
    if any((info.title, info.author, info.language, info.cover)):
        meta = BookMeta(
            title=info.title, author=info.author, language=info.language, cover=info.cover
        )
    return Source(
        _chapters(book.chapters, fields),
        book=meta,
        skipped=book.skipped,
        notes=book.notes,
    )


def _chapters(chapters: tuple[BookChapter, ...], fields: Layer) -> Iterator[SourceChapter]:
    for c in chapters:
        lines = tuple(
            SourceLine(x.text, x.file, x.line, speaker=x.speaker, start=x.start_s, end=x.end_s)
            for x in c.lines
        )
        yield SourceChapter(c.id, c.title, c.file, c.line, lines, fields)
