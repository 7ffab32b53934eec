"""EPUB -> chapters that follow the table of contents, with nothing silently dropped.

Chapters are the TOC entries (EPUB3 nav, else NCX), nested ones flattened in reading order.
A chapter runs from its entry's place (a file, or an anchor inside one) to the next entry's
place in the spine, so two chapters sharing one HTML file are split at their anchors.

Where text outside the TOC goes (every body text node ends in a chapter or in ``skipped``):
- before the first TOC entry (cover, title page, copyright): skipped;
- a linear spine file no entry points into, after a chapter began: read as part of that
  chapter (books often split one chapter over several files), with a note;
- a non-linear spine file no entry points into, and the book's own TOC page: skipped;
- what ``xhtml`` leaves out (note markers, notes, page numbers, ruby readings): skipped;
- chapters left out by ``include``/``exclude``: every line skipped with the rule that did it.
A book without a TOC gets one chapter per linear spine file, titled by its first heading.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ebooklib import epub

from pipeline.books.epub_load import EpubLimits, Loaded, TocEntry, book_info, load
from pipeline.books.model import Skipped, SourceBook, SourceChapter, SourceLine, chapter_ids
from pipeline.books.xhtml import Anchor, Left, Para, XhtmlError, element_ids, events
from pipeline.books.xhtml import parse_document as parse_xhtml
from pipeline.errors import ManifestError, Problem

Selector = str | int


@dataclass(frozen=True)
class EpubOptions:
    """``include``/``exclude``: chapter titles (glob, or ``re:REGEX``; case-insensitive) or
    1-based positions in the chapter list, as ``plan`` shows it (negative counts from the end).
    A chapter is kept when ``include`` is empty or matches it, and ``exclude`` does not."""

    include: tuple[Selector, ...] = ()
    exclude: tuple[Selector, ...] = ()
    limits: EpubLimits = field(default_factory=EpubLimits)


@dataclass
class _Open:
    entry: int
    title: str | None
    file: str
    lines: list[SourceLine] = field(default_factory=list)


class _Assembler:
    def __init__(self, display: str, loaded: Loaded) -> None:
        self.display = display
        self.loaded = loaded
        self.toc = loaded.toc or _one_per_file(loaded.book)
        self.chapters: list[_Open] = []
        self.skipped: list[Skipped] = []
        self.notes: list[str] = []
        self.at: dict[tuple[str, str | None], list[int]] = {}
        for index, entry in enumerate(self.toc):
            self.at.setdefault((entry.file, entry.fragment), []).append(index)
        if not loaded.toc:
            self.notes.append("the book has no table of contents: one chapter per spine file")

    def where(self, name: str) -> str:
        return f"{self.display}!{posixpath.join(self.loaded.opf_dir, name)}"

    def open(self, keys: Sequence[tuple[str, str | None]]) -> None:
        for key in keys:
            for index in self.at.pop(key, []):
                entry = self.toc[index]
                self.chapters.append(_Open(index, entry.title, self.where(entry.file)))

    def run(self) -> None:
        for idref, linear in self.loaded.book.spine:
            item = self.loaded.book.get_item_with_id(idref)
            if item is None:
                self.notes.append(f"{self.display}: spine item {idref!r} is not in the manifest")
            if item is None or not isinstance(item, epub.EpubHtml):
                continue  # images and other non-text spine items carry no text to read
            self.read_file(item, linear != "no")
        for key, indexes in self.at.items():
            for index in indexes:
                self.notes.append(
                    f"TOC entry {self.toc[index].title!r} points at {key[0]}, which is not a "
                    "text file of the reading order (spine); it has no chapter"
                )

    def read_file(self, item: Any, linear: bool) -> None:
        name = item.file_name
        where = self.where(name)
        try:
            root = parse_xhtml(item.content or b"")
        except XhtmlError as error:
            self.notes.append(f"{where}: cannot be parsed ({error}); its text is not read")
            return
        ids = element_ids(root)
        for file, fragment in [k for k in self.at if k[0] == name and k[1] is not None]:
            if fragment not in ids:
                self.notes.append(f"{where}: no anchor #{fragment}; its entry starts at the file")
                self.at.setdefault((name, None), []).extend(self.at.pop((file, fragment)))
        targets = {k[1] for k in self.at if k[0] == name and k[1] is not None}
        reason = self.file_reason(item, name, linear, targets)
        has_start = (name, None) in self.at
        self.open([(name, None)])
        continued = False
        for event in events(root, targets):
            if isinstance(event, Anchor):
                self.open([(name, event.id)])
            elif isinstance(event, Left):
                self.skipped.append(Skipped(event.text, event.reason, where, event.line))
            elif reason is not None or not self.chapters:
                why = reason or "before the first table-of-contents entry"
                self.skipped.append(Skipped(event.text, why, where, event.line))
            else:
                continued = continued or self.chapters[-1].file != where
                self.add(event, where)
        if continued and not targets and not has_start:
            self.notes.append(
                f"{where} is in no TOC entry: read as part of {self.chapters[-1].title!r}"
            )

    def file_reason(self, item: Any, name: str, linear: bool, targets: set[str]) -> str | None:
        if targets or (name, None) in self.at:
            return None
        if isinstance(item, epub.EpubNav):
            return "the book's own table of contents page"
        if not linear:
            return "non-linear spine file in no table-of-contents entry"
        return None

    def add(self, para: Para, where: str) -> None:
        chapter = self.chapters[-1]
        if chapter.title is None and para.heading:
            chapter.title = para.text
        chapter.lines.append(SourceLine(para.text, where, para.line, heading=para.heading))


def _one_per_file(book: Any) -> list[TocEntry]:
    entries = []
    for idref, linear in book.spine:
        item = book.get_item_with_id(idref)
        if isinstance(item, epub.EpubHtml) and not isinstance(item, epub.EpubNav):
            if linear != "no":
                entries.append(TocEntry(None, item.file_name, None))
    return entries


def read_epub(path: Path, options: EpubOptions | None = None) -> SourceBook:
    """Parse ``path``; raises ``ManifestError`` naming the file for a bad or refused book."""
    options = options or EpubOptions()
    display = str(path)
    loaded = load(Path(path), display, options.limits)
    assembler = _Assembler(display, loaded)
    assembler.run()
    chapters, notes = _chapters(assembler)
    kept, dropped = select(chapters, options.include, options.exclude, display)
    return SourceBook(
        file=display,
        chapters=tuple(kept),
        skipped=tuple(assembler.skipped) + tuple(dropped),
        notes=tuple(assembler.notes + notes),
        info=book_info(loaded.book),
    )


def _chapters(assembler: _Assembler) -> tuple[list[SourceChapter], list[str]]:
    notes: list[str] = []
    order = [c.entry for c in assembler.chapters]
    if order != sorted(order):
        notes.append("the TOC order differs from the reading order: chapters follow the reading")
    full = [c for c in assembler.chapters if c.lines]
    for c in assembler.chapters:
        if not c.lines:
            notes.append(f"TOC entry {c.title!r} has no text of its own: no chapter")
    ids = chapter_ids(len(full))
    return [
        SourceChapter(cid, c.title, tuple(c.lines), c.file, c.lines[0].line)
        for cid, c in zip(ids, full, strict=True)
    ], notes


def _matches(selector: Selector, position: int, count: int, title: str | None) -> bool:
    if isinstance(selector, int):
        return selector == position or (selector < 0 and count + selector + 1 == position)
    text = (title or "").casefold()
    if selector.startswith("re:"):
        return re.search(selector[3:], title or "", re.IGNORECASE) is not None
    return fnmatch.fnmatchcase(text, selector.casefold())


def check_selectors(selectors: Sequence[Selector], display: str) -> None:
    problems = []
    for s in selectors:
        if isinstance(s, str) and s.startswith("re:"):
            try:
                re.compile(s[3:])
            except re.error as error:
                problems.append(Problem(display, None, f"bad regex {s!r}: {error}"))
        elif isinstance(s, bool) or not isinstance(s, int | str) or s == 0:
            problems.append(Problem(display, None, f"bad chapter selector {s!r}: use a title "
                                    "glob, re:REGEX or a 1-based position"))
    if problems:
        raise ManifestError(problems)


def select(
    chapters: Sequence[SourceChapter],
    include: Sequence[Selector],
    exclude: Sequence[Selector],
    display: str,
) -> tuple[list[SourceChapter], list[Skipped]]:
    """The chapters ``include`` (all when empty) keeps and ``exclude`` does not drop.

    Every line of a chapter left out becomes a ``Skipped`` naming the rule.
    """
    check_selectors([*include, *exclude], display)
    kept: list[SourceChapter] = []
    dropped: list[Skipped] = []
    count = len(chapters)
    for position, chapter in enumerate(chapters, 1):
        hit = [s for s in exclude if _matches(s, position, count, chapter.title)]
        missed = include and not any(_matches(s, position, count, chapter.title) for s in include)
        if not hit and not missed:
            kept.append(chapter)
            continue
        why = f"exclude: {hit[0]!r}" if hit else "not in include"
        reason = f"chapter {chapter.id} {chapter.title!r} left out by {why}"
        dropped.extend(Skipped(x.text, reason, x.file, x.line) for x in chapter.lines)
    return kept, dropped
