"""Keeping the API token out of everything a user or a file sees, and terminals safe.

Whatever reaches a message, a report or a terminal may have come from outside: a server that
echoes the ``Authorization`` header back (in a JSON ``msg``, an HTML page, a ``Location``, a
voice name), or an input text that read the environment. :class:`Redactor` is the one
function for all of it: :meth:`Redactor.clean` removes every form of the token it knows and
escapes control characters, so that one line of text stays one line on a terminal and
cannot move its cursor, recolour it or hide what follows.

The forms of the token removed: as is (case-insensitively: a proxy may change case), its
percent-encoded forms, and its base64 forms (alone, after ``Bearer ``, and as the password
of basic authentication) at each of the three byte alignments a base64 text can have, in
the standard and the URL-safe alphabets. Its JSON ``\\uXXXX`` and HTML entity forms are
decoded by the callers that parse those formats before they call this.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus

from pipeline.errors import ConfigError

__all__ = ["MASK", "MIN_SECRET_LENGTH", "Redactor", "check_token", "escape_controls"]

MASK = "***"
# Shorter "tokens" are not secrets (the local backend's is "local"): hiding them would mangle
# ordinary words such as voice names, and a real Coze token is tens of characters long.
MIN_SECRET_LENGTH = 8
# Cleaning a parsed JSON document stops this deep: nothing the client reads is deeper.
MAX_JSON_DEPTH = 32

# Bidirectional overrides and isolates reorder what a terminal shows; they are escaped too.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def _is_control(char: str, keep_newlines: bool) -> bool:
    if char == "\n" and keep_newlines:
        return False
    # Line and paragraph separators (Zl, Zp) break a line in some terminals and editors.
    return unicodedata.category(char) in ("Cc", "Zl", "Zp") or char in _BIDI


def escape_controls(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with control characters (C0, DEL, C1, bidi, U+2028/9) as visible escapes.

    A tab becomes ``\\t`` and a newline ``\\n`` (kept as is with ``keep_newlines``, for a
    message that is meant to span lines); the others become ``\\xNN`` or ``\\uNNNN``.
    """
    if text.isprintable():
        return text
    out = []
    for char in text:
        if not _is_control(char, keep_newlines):
            out.append(char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(f"\\u{ord(char):04x}")
    return "".join(out)


def _base64_forms(secret: bytes) -> set[str]:
    """The parts of a base64 text that encode ``secret`` whatever bytes surround it."""
    forms = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + secret + b"\0\0").decode("ascii")
        start = -(-8 * offset // 6)  # the first character made of secret bits only
        end = 8 * (offset + len(secret)) // 6
        inner = encoded[start:end]
        forms.add(inner)
        forms.add(inner.replace("+", "-").replace("/", "_"))
    return forms


def _token_pattern(token: str) -> re.Pattern[str]:
    plain = {token, quote(token, safe=""), quote_plus(token)}
    plain |= {p.replace("%" + h, "%" + h.lower()) for p in plain for h in re.findall(
        r"%([0-9A-F]{2})", p)}
    raw = token.encode("utf-8")
    encoded: set[str] = set()
    for secret in (raw, b"Bearer " + raw, b":" + raw):
        encoded |= _base64_forms(secret)
    # Longest first, so that a longer form is removed whole before a shorter one inside it.
    exact = sorted(encoded, key=len, reverse=True)
    folded = sorted(plain, key=len, reverse=True)
    alternatives = [f"(?i:{re.escape(p)})" for p in folded] + [re.escape(e) for e in exact]
    return re.compile("|".join(alternatives))


@dataclass(frozen=True)
class Redactor:
    """Removes the token from text and makes text safe to print. Never shows its token."""

    token: str = field(default="", repr=False)
    _pattern: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pattern = _token_pattern(self.token) if len(self.token) >= MIN_SECRET_LENGTH else None
        object.__setattr__(self, "_pattern", pattern)

    def __repr__(self) -> str:
        return f"Redactor(token={'set' if self._pattern is not None else 'unset'})"

    def redact(self, text: str) -> str:
        """``text`` with every known form of the token replaced by ``***``."""
        return text if self._pattern is None else self._pattern.sub(MASK, text)

    def redact_cut(self, text: str) -> str:
        """:meth:`redact`, for a text cut from a longer one: a start of the token at its end
        (at least ``MIN_SECRET_LENGTH`` characters of it) is removed too."""
        text = self.redact(text)
        if self._pattern is None:
            return text
        folded, token = text.lower(), self.token.lower()
        for size in range(len(token) - 1, MIN_SECRET_LENGTH - 1, -1):
            if folded.endswith(token[:size]):
                return text[: len(text) - size] + MASK
        return text

    def found_in(self, text: str) -> bool:
        """Whether ``text`` holds the token in any of the forms :meth:`redact` removes."""
        return self._pattern is not None and self._pattern.search(text) is not None

    def clean(self, text: str, *, keep_newlines: bool = False) -> str:
        """``text`` fit for a user or a file: the token removed, control characters escaped."""
        return escape_controls(self.redact(text), keep_newlines=keep_newlines)

    def clean_json(self, value: Any, depth: int = 0) -> Any:
        """A parsed JSON value with every string (keys too) cleaned.

        Containers deeper than ``MAX_JSON_DEPTH`` become None: nothing reads that deep, and a
        hostile document must not cost a recursion error.
        """
        if isinstance(value, str):
            return self.clean(value)
        if isinstance(value, Mapping | Sequence) and depth >= MAX_JSON_DEPTH:
            return None
        if isinstance(value, Mapping):
            return {self.clean(str(k)): self.clean_json(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.clean_json(v, depth + 1) for v in value]
        return value


def check_token(token: str, variable: str = "the API token") -> str:
    """The token without surrounding whitespace; ConfigError (never showing it) if unusable.

    CI secrets often end with a newline; that is stripped. A token with a space, a control
    character or a non-ASCII character inside cannot go into an HTTP header, and sending it
    would only earn a confusing refusal.
    """
    stripped = token.strip()
    for position, char in enumerate(stripped, start=1):
        if not "\x21" <= char <= "\x7e":
            kind = "whitespace" if char.isspace() else (
                "a control character" if unicodedata.category(char) == "Cc" else
                "a non-ASCII character")
            raise ConfigError(
                f"{variable} has {kind} at position {position} of {len(stripped)}; "
                "a Coze token is printable ASCII only: copy it again"
            )
    return stripped
