"""Subtitle text: sentences, clauses and words of a chunk, and lines that fit a screen.

Every split keeps every character: the pieces of a text, joined, are the text. A line holds
about 42 Latin or 16 CJK characters (a CJK character counts 42/16 of a Latin one), and a cue
at most two lines.
"""

from __future__ import annotations

import regex

LINE_WIDTH = 42.0
MAX_LINES = 2
_WIDE_WIDTH = LINE_WIDTH / 16
_WIDE_CHAR = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\u3000-\u303f\uff00-\uffef]")
_CLOSERS = "\"'”’»)\\]}」』》】〉）"  # inside a character class: "]" escaped
# A sentence ends at . ! ? … (then closers and a space), or at 。！？ (then closers).
_SENTENCE_END = regex.compile(rf"(?:[.!?…]+[{_CLOSERS}]*(?=\s|$)|[。！？]+[{_CLOSERS}]*)\s*")
_CLAUSE_END = regex.compile(rf"(?:[,;:—–][{_CLOSERS}]*(?=\s)|[，、；：—][{_CLOSERS}]*)\s*")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr st mt jr sr vs etc no prof capt col gen lt sgt rev hon fig vol e.g i.e".split()
)


_BREAK_AFTER = regex.compile(r"[\s\p{P}]$")
_SENTENCE_BREAK = regex.compile(rf"[.!?…。！？][{_CLOSERS}]*\s*$")
_PHRASE_BREAK_COST = 12.0


def width(text: str) -> float:
    """Display width in Latin characters."""
    return sum(_WIDE_WIDTH if _WIDE_CHAR.match(ch) else 1.0 for ch in text)


def _cut(text: str, pattern: regex.Pattern[str], *, sentences: bool = False) -> list[str]:
    pieces, start = [], 0
    for match in pattern.finditer(text):
        if match.end() <= start or match.end() >= len(text):
            continue
        if sentences and _continues(text, match.start(), match.end()):
            continue
        pieces.append(text[start : match.end()])
        start = match.end()
    pieces.append(text[start:])
    return [p for p in pieces if p]


def _continues(text: str, end_mark: int, after: int) -> bool:
    """True when the sentence goes on: "Mr. Holmes", "J. Smith", '"Really?" he said'."""
    if text[after : after + 1].islower():
        return True
    if text[end_mark] != ".":
        return False
    dot = end_mark
    word = regex.search(r"[\p{L}.]+$", text[:dot])
    if word is None:
        return False
    token = word.group().lower()
    # "Mr." and "e.g." are not sentence ends; nor is a single initial ("J. Smith").
    return token in _ABBREVIATIONS or (len(token) == 1 and word.group().isupper())


def sentences(text: str) -> list[str]:
    """``text`` cut after each sentence end; the pieces joined are ``text``."""
    return _cut(text, _SENTENCE_END, sentences=True)


def clauses(text: str) -> list[str]:
    """``text`` cut after each clause mark (comma, semicolon, colon, dash)."""
    return _cut(text, _CLAUSE_END)


def words(text: str) -> list[str]:
    """``text`` cut after each space, and between CJK characters."""
    pieces, start = [], 0
    for i, ch in enumerate(text):
        nxt = text[i + 1] if i + 1 < len(text) else ""
        boundary = (ch.isspace() and not nxt.isspace()) or (
            bool(nxt) and (_WIDE_CHAR.match(ch) is not None) and not nxt.isspace()
        )
        if boundary and i + 1 < len(text):
            pieces.append(text[start : i + 1])
            start = i + 1
    pieces.append(text[start:])
    return [p for p in pieces if p]


def wrap(text: str) -> list[str] | None:
    """``text`` (stripped) on at most two balanced lines, or None when it does not fit."""
    text = " ".join(text.split())
    if width(text) <= LINE_WIDTH:
        return [text]
    best: tuple[float, list[str]] | None = None
    pieces = words(text)
    for cut in range(1, len(pieces)):
        first, second = "".join(pieces[:cut]).rstrip(), "".join(pieces[cut:]).lstrip()
        widest = max(width(first), width(second))
        # Between two CJK characters, a break after punctuation reads better than one inside a
        # phrase, worth four or five characters of balance.
        cost = widest + _break_cost(pieces[cut - 1])
        if widest <= LINE_WIDTH and (best is None or cost < best[0]):
            best = (cost, [first, second])
    return best[1] if best else None


def _break_cost(before: str) -> float:
    if _SENTENCE_BREAK.search(before):
        return 0.0
    return 1.0 if _BREAK_AFTER.search(before) else _PHRASE_BREAK_COST


def fits(text: str) -> bool:
    return wrap(text) is not None
