"""Normalise, then the lexicon: the order a line's text goes through before chunking."""

from __future__ import annotations

import pytest

from pipeline.books.lexicon import LexiconEntry, build
from pipeline.books.normalize import NormalizeError
from pipeline.books.spoken import spoken_text


def test_lexicon_sees_the_normalised_text() -> None:
    lexicon = build([
        LexiconEntry("twenty twenty four", "two thousand twenty four"),
        LexiconEntry("Li", "Lee", voice="narrator"),
    ])
    text = "Li was born in 2024."
    assert spoken_text(text) == text
    assert spoken_text(text, lexicon=lexicon, voice="narrator") == "Lee was born in 2024."
    assert spoken_text(text, normalise=True, language="en", lexicon=lexicon, voice="x") == (
        "Li was born in two thousand twenty four."
    )


def test_normalising_needs_a_language() -> None:
    with pytest.raises(NormalizeError, match="no language"):
        spoken_text("3", normalise=True)
