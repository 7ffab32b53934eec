"""Plain-text books: chapters found by heading lines, paragraphs by the manifest's rules.

A heading is a whole line (at most ``MAX_HEADING_CHARS`` after stripping) that matches one
of the built-in rules, or the user's regex instead of them:
- Chinese and Japanese ``第…回/章/节/節/卷`` with Chinese, full-width or Arabic numerals
  (``第一回 宴桃园豪杰三结义``, ``第12章``, ``第三章　旅立ち``);
- ``Chapter N`` / ``CHAPTER I.`` / ``Chapter Twelve: Title`` (any case);
- a Roman numeral from I to CCCXCIX alone on its line (``IV``, ``XII.``).
Text before the first heading is a preface chapter (or skipped, by option). A heading followed
directly by another heading has no text of its own (a table of contents at the top of the
file): it is skipped with a note rather than made an empty chapter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.books.files import decode, read_capped
from pipeline.books.model import Skipped, SourceBook, SourceChapter, SourceLine, chapter_ids
from pipeline.errors import ManifestError, Problem
from pipeline.manifest.text import paragraphs as manifest_paragraphs

MAX_HEADING_CHARS = 80
DEFAULT_MAX_BYTES = 64 * 1024 * 1024

_ZH_NUM = r"[0-9０-９零〇一二三四五六七八九十百千两壹贰叁肆伍陆柒捌玖拾佰仟]+"
_ZH_UNIT = r"[回章节節卷部篇集]"
# After the unit: nothing, a separator and a title, or a short title with no sentence end.
_ZH = rf"第{_ZH_NUM}{_ZH_UNIT}(?:[\s　:：、.．·\-—]+.*|[^，。！？,.!?；;]{{0,20}})"
_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
    "fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|"
    "eighty|ninety|hundred"
)
_EN_NUM = rf"\d+|[IVXLCDMivxlcdm]+|(?i:(?:{_NUMBER_WORDS})(?:[-\s](?:{_NUMBER_WORDS}))*)"
_EN = rf"(?i:chapter)\s+(?:{_EN_NUM})(?:[.:]?(?:\s+.*)?|[.:—-].*)"
# 1 to 399: no book has more chapters, and "D." or "MIX" alone on a line is not a heading.
_ROMAN = r"(?=[IVXLC])C{0,3}(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})\.?"
BUILTIN_HEADINGS = re.compile(f"(?:{_ZH})|(?:{_EN})|(?:{_ROMAN})")


@dataclass(frozen=True)
class TextBookOptions:
    """``heading``: a regex a whole stripped line must match, instead of the built-in rules.
    ``preface``: ``"chapter"`` (text before the first heading is a chapter) or ``"skip"``."""

    heading: str | None = None
    preface: str = "chapter"
    encoding: str = "utf-8"
    max_bytes: int = DEFAULT_MAX_BYTES


def heading_pattern(options: TextBookOptions, display: str) -> re.Pattern[str]:
    if options.heading is None:
        return BUILTIN_HEADINGS
    try:
        return re.compile(options.heading)
    except re.error as error:
        raise ManifestError(
            [Problem(display, None, f"bad heading regex {options.heading!r}: {error}")]
        ) from None


def is_heading(line: str, pattern: re.Pattern[str]) -> bool:
    text = line.strip()
    return 0 < len(text) <= MAX_HEADING_CHARS and pattern.fullmatch(text) is not None


def read_text_book(path: Path, options: TextBookOptions | None = None) -> SourceBook:
    """Read and split ``path``; ``ManifestError`` naming the file for unreadable input."""
    options = options or TextBookOptions()
    display = str(path)
    data = read_capped(Path(path), display, options.max_bytes)
    return parse_text_book(decode(data, display, options.encoding), display, options)


def _body(lines: list[str], start: int, stop: int, display: str) -> list[SourceLine]:
    """Paragraphs of ``lines[start:stop]`` with their 1-based line numbers in the file."""
    chunk = "\n".join(lines[start:stop])
    return [SourceLine(text, display, start + offset + 1)
            for offset, text in manifest_paragraphs(chunk)]


def parse_text_book(text: str, display: str, options: TextBookOptions | None = None) -> SourceBook:
    options = options or TextBookOptions()
    if options.preface not in ("chapter", "skip"):
        raise ManifestError([Problem(display, None, f"preface {options.preface!r} is not "
                                     "'chapter' or 'skip'")])
    pattern = heading_pattern(options, display)
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    heads = [i for i, line in enumerate(lines) if is_heading(line, pattern)]
    skipped: list[Skipped] = []
    notes: list[str] = []
    parts: list[tuple[str | None, list[SourceLine], int | None]] = []
    preface = _body(lines, 0, heads[0] if heads else len(lines), display)
    if preface and heads and options.preface == "skip":
        skipped += [Skipped(x.text, "before the first chapter heading", display, x.line)
                    for x in preface]
    elif preface:
        parts.append((None, preface, preface[0].line))
    if not heads:
        notes.append("no chapter heading found: the whole text is one chapter")
    for n, head in enumerate(heads):
        stop = heads[n + 1] if n + 1 < len(heads) else len(lines)
        title = lines[head].strip()
        body = _body(lines, head + 1, stop, display)
        if not body:
            skipped.append(Skipped(title, "chapter heading with no text (a table of contents?)",
                                   display, head + 1))
            continue
        parts.append((title, [SourceLine(title, display, head + 1, heading=True), *body], head + 1))
    ids = chapter_ids(len(parts))
    chapters = tuple(
        SourceChapter(cid, title, tuple(body), display, line)
        for cid, (title, body, line) in zip(ids, parts, strict=True)
    )
    return SourceBook(display, chapters, tuple(skipped), tuple(notes))
