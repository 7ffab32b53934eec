"""Text rules shared by every reader: paragraphs, UTF-8, file reading, problem text.

A ``text`` or ``text_file`` has one line per paragraph; paragraphs are separated by blank
lines, and a text without any blank line between two non-blank lines has one paragraph per
non-empty line. Inside a paragraph a line break becomes a space, except next to a CJK
character, where it becomes nothing (no space is written between them).
"""

from __future__ import annotations

import codecs
import difflib
import os
from collections.abc import Sequence
from pathlib import Path

import regex

from pipeline.coze.speech import is_number as is_number  # one rule for speech and manifest
from pipeline.errors import Problem

# Han, kana, Hangul, Bopomofo, CJK punctuation and full-width forms: no space is written
# between them, so a line break next to one of them is dropped rather than made a space.
_CJK = regex.compile(
    r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\p{Bopomofo}"
    r"\u3000-\u303f\u3040-\u30ff\uff00-\uffef]"
)


def split_paragraphs(text: str) -> list[str]:
    """The lines of a ``text`` or ``text_file``: one per paragraph.

    Paragraphs are separated by blank lines; a text with no blank line between two non-blank
    lines has one paragraph per non-empty line. Inside a paragraph each line is stripped and
    a line break becomes a space, except next to a CJK character (Han, kana, Hangul, CJK
    punctuation, full-width forms), where it becomes nothing.
    """
    return [p for _, p in paragraphs(text)]


def physical_lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def join_lines(lines: Sequence[str]) -> str:
    parts: list[str] = []
    for raw in lines:
        piece = raw.strip()
        if not piece:
            continue
        if parts and not (_CJK.match(parts[-1][-1]) or _CJK.match(piece[0])):
            parts.append(" ")
        parts.append(piece)
    return "".join(parts)


def one_line(text: str) -> str:
    """A line's text with its line breaks joined as inside a paragraph."""
    return join_lines(physical_lines(text))


def paragraphs(text: str) -> list[tuple[int, str]]:
    """(0-based line offset of the paragraph's first line, paragraph text), in order."""
    lines = physical_lines(text)
    filled = [i for i, line in enumerate(lines) if line.strip()]
    if not filled:
        return []
    if filled[-1] - filled[0] + 1 == len(filled):  # no blank line between two non-blank ones
        return [(i, lines[i].strip()) for i in filled]
    out: list[tuple[int, str]] = []
    start = filled[0]
    for i in range(filled[0], filled[-1] + 2):
        if i <= filled[-1] and lines[i].strip():
            continue
        if i > start:
            out.append((start, join_lines(lines[start:i])))
        start = i + 1
    return out


def unknown(word: str, what: str, choices: Sequence[str]) -> str:
    """The message for a key or column not in ``choices``, with the closest one if any."""
    found = difflib.get_close_matches(word, choices, n=1)
    if found:
        return f"{word}: unknown {what}; did you mean {found[0]}?"
    return f"{word}: unknown {what}; allowed: {', '.join(choices)}"


def not_utf8(data: bytes, error: UnicodeDecodeError, base: int) -> str:
    offset = base + error.start
    bad = data[error.start : error.start + 1].hex()
    return f"not UTF-8: byte 0x{bad} at byte offset {offset}"


def decode_utf8(data: bytes) -> tuple[str | None, int, str]:
    """(text, 0, "") or (None, 1-based line of the first bad byte, message)."""
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[skip:].decode("utf-8"), 0, ""
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, skip + e.start) + 1
        return None, line, not_utf8(data[skip:], e, skip)


def read_bytes(path: Path) -> bytes | str:
    """The file's bytes, or why it cannot be read: a regular file of bounded size only."""
    from pipeline.manifest.inputfile import read_bounded

    return read_bounded(path)


def read_text(path: Path) -> tuple[str | None, int | None, str]:
    """(text, None, "") or (None, line of the problem or None, why it cannot be read)."""
    data = read_bytes(path)
    if isinstance(data, str):
        return None, None, data
    text, bad_line, message = decode_utf8(data)
    if text is None:
        return None, bad_line, message
    return text, None, ""


def display(path: Path) -> str:
    return os.path.normpath(str(path))


def is_whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def problem(file: str, line: int | None, message: str) -> Problem:
    """A problem whose text is one printable line, whatever the input quoted into it.

    Messages quote keys, values and file names from the input: a line break, a control
    character or a terminal escape in them would split the FILE:LINE: report or act on the
    user's terminal, so every non-printable character is shown as its escape.
    """
    return Problem(printable(file), line, printable(message))


def printable(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
