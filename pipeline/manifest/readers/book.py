"""The adapter from a book parser's ``SourceBook`` (pipeline.books) to the manifest's chapters.

A book reader (``epub``, ``txt``) is three steps: parse with its ``pipeline.books`` module,
forward a ``ManifestError``'s problems to the context, and ``book_source`` the result. A new
parsed format (subtitles, say) copies one of them and adds its ``READERS`` line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

from pipeline.books.model import SourceBook
from pipeline.books.model import SourceChapter as BookChapter
from pipeline.errors import ManifestError
from pipeline.manifest.model import BookMeta, Layer, Source, SourceChapter, SourceLine
from pipeline.manifest.readers import ReadContext


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
        context.problem(context.display, None, _no_chapters(book))
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


def _no_chapters(book: SourceBook) -> str:
    reasons = Counter(s.reason for s in book.skipped)
    said = "; ".join(f"{n} x {reason}" for reason, n in reasons.most_common(5))
    if not said:
        return "no chapters: the book has no text to speak"
    return f"no chapters: every text was left out ({said})"
