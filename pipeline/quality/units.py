"""How much speech a text asks for: CJK characters, Latin syllables and pauses.

A CJK character is one syllable of speech; a Latin word is counted in syllables (groups of
vowels), which follow speaking time much more closely than letters or words do. Digits count
one syllable each, as a rough mean of their spoken length. Sentence and clause punctuation
adds a pause, which every voice makes and which is a large share of a short chunk's time.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import regex

_CJK = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]")
_LATIN_WORD = regex.compile(r"[\p{Latin}\p{Greek}\p{Cyrillic}'’]+")
_VOWEL_GROUP = regex.compile(r"[aeiouyàâäéèêëîïôöùûüæœáíóúåøаеёиоуыэюяαεηιουω]+", regex.I)
_DIGIT = regex.compile(r"\d")
_SENTENCE_END = regex.compile(r"[.!?…。！？；;]+")
_CLAUSE = regex.compile(r"[,:、，：—–]+")
_OUTER_MARKS = regex.compile(r"^[\p{P}\p{Z}\s]+|[\p{P}\p{Z}\s]+$")

# Pauses in syllables: a sentence end costs about two syllables' time, a comma about one.
SENTENCE_PAUSE_UNITS = 2.0
CLAUSE_PAUSE_UNITS = 1.0


@dataclass(frozen=True)
class TextUnits:
    """A text's speech, in syllable-sized units."""

    cjk: int
    latin: int
    digits: int
    pauses: float

    @property
    def spoken(self) -> int:
        """Syllables actually spoken: the base of the speech rate."""
        return self.cjk + self.latin + self.digits

    @property
    def total(self) -> float:
        """Spoken syllables and pauses: the base of the predicted duration."""
        return self.spoken + self.pauses

    @property
    def script(self) -> str:
        """``cjk`` or ``latin``: the script with most syllables (rates differ by script)."""
        return "cjk" if self.cjk >= self.latin + self.digits and self.cjk else "latin"


# The gate counts each answer's text twice (its verdict, then what it teaches): once is enough.
@functools.lru_cache(maxsize=256)
def text_units(text: str) -> TextUnits:
    """Count the syllable-sized units of ``text``; see the module docstring."""
    cjk = len(_CJK.findall(text))
    latin = sum(_syllables(word) for word in _LATIN_WORD.findall(text))
    digits = len(_DIGIT.findall(text))
    # Only pauses between words: the silence before the first and after the last is not
    # part of the speech time that the units predict.
    inner = _OUTER_MARKS.sub("", text)
    pauses = SENTENCE_PAUSE_UNITS * len(_SENTENCE_END.findall(inner)) + CLAUSE_PAUSE_UNITS * len(
        _CLAUSE.findall(inner)
    )
    return TextUnits(cjk, latin, digits, pauses)


def _syllables(word: str) -> int:
    w = word.lower()
    groups = len(_VOWEL_GROUP.findall(w))
    # A silent final "e" (make, whole, but not table) and a silent "e" in a final -es or -ed
    # (times, named, but not boxes or wanted) are vowel groups that are not spoken.
    if groups > 1 and len(w) > 2:
        if w.endswith("e") and not (w.endswith("le") and w[-3] not in _VOWELS):
            groups -= 1
        elif w.endswith(("es", "ed")) and w[-3] not in "tdsxzcgh" + _VOWELS:
            groups -= 1
    return max(1, groups)


_VOWELS = "aeiouy"
