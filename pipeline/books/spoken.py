"""What is sent for a line: its text, normalised (when asked), then the lexicon applied.

The order is fixed: normalisation first, so that a lexicon entry can respell what the
normaliser wrote (``twenty twenty four`` -> ``two thousand twenty four``), then the lexicon,
then (elsewhere) the chunker cuts the result. Both steps are pure, so the request cache, keyed
on what is sent, re-synthesizes exactly the chunks an edit changes.
"""

from __future__ import annotations

from pipeline.books.lexicon import Lexicon
from pipeline.books.normalize import NormalizeError, normalize


def spoken_text(
    text: str,
    *,
    voice: str | None = None,
    language: str | None = None,
    normalise: bool = False,
    lexicon: Lexicon | None = None,
) -> str:
    """``text`` as it will be sent; ``NormalizeError`` when normalising without a language."""
    if normalise:
        if language is None:
            raise NormalizeError(
                "normalize is on but the line has no language: set language (zh, en, ja) or "
                "use a voice whose language_code is known"
            )
        text = normalize(text, language)
    if lexicon is not None:
        text = lexicon.apply(text, voice=voice, language=language)
    return text
