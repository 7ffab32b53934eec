"""Bounds on what a server can make the client do: how much it reads and how long it waits.

- **Answer sizes.** An audio answer may be at most :func:`audio_body_limit` bytes, decoded
  (a gzip answer counts after decompression, so a gzip bomb stops at the limit):

      limit = 64 KiB + (30 s + 0.4 s x characters / min(speed, 1)) x bytes per second

  where bytes per second is ``rate x 2 bytes x 2 channels`` for wav and pcm and 64,000
  (512 kbit/s, above MP3's 320 and Opus's 510) for mp3 and ogg_opus. 0.4 s a character is
  about twice the slowest natural speech (Chinese is read at 4 to 5 characters a second); the
  30 s floor covers leading silence and very short texts. So a 300-character line at 24 kHz
  wav may be up to 23 MB, and a 700 MB answer is refused after its first bytes. An error body
  (JSON, HTML, text) is read up to 64 KiB and cut there: nothing useful follows; a JSON page
  of the voice list up to 4 MiB.
- **Waits.** :func:`parse_retry_after` turns any ``Retry-After`` header (delta seconds, an
  HTTP date, or garbage) into None or a finite number of seconds from 0 to
  ``MAX_RETRY_AFTER_S``; both the retry sleep and the rate limiter get that capped value.
"""

from __future__ import annotations

import email.utils
import math
import time

import aiohttp

from pipeline.speech import SpeechRequest

__all__ = [
    "ERROR_BODY_LIMIT",
    "JSON_BODY_LIMIT",
    "MAX_RETRY_AFTER_S",
    "BodyTooLarge",
    "audio_body_limit",
    "parse_retry_after",
    "read_body",
]

# A Retry-After beyond this is a broken or hostile server: waiting longer helps nobody.
MAX_RETRY_AFTER_S = 120.0
ERROR_BODY_LIMIT = 64 * 1024
JSON_BODY_LIMIT = 4 * 1024 * 1024
SECONDS_PER_CHARACTER = 0.4
FLOOR_SECONDS = 30.0
HEADER_SLACK_BYTES = 64 * 1024
COMPRESSED_BYTES_PER_SECOND = 64_000
_READ_CHUNK = 64 * 1024


class BodyTooLarge(Exception):
    """An answer body went past its limit; the rest was not read. Never leaves the client."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"answer body over {limit} bytes")
        self.limit = limit


def audio_body_limit(request: SpeechRequest) -> int:
    """The most audio bytes a sane answer to ``request`` can have (see the module's formula)."""
    params = request.params
    speed = min(params.speed or 1.0, 1.0)
    seconds = FLOOR_SECONDS + SECONDS_PER_CHARACTER * len(request.text) / speed
    if params.format in ("wav", "pcm"):
        per_second = params.rate * 2 * 2
    else:
        per_second = COMPRESSED_BYTES_PER_SECOND
    return HEADER_SLACK_BYTES + math.ceil(seconds * per_second)


async def read_body(
    response: aiohttp.ClientResponse, limit: int, *, cut: bool
) -> tuple[bytes, bool]:
    """Up to ``limit`` bytes of the (decoded) body, and whether there was more.

    With ``cut`` the first ``limit`` bytes are kept and the rest is never read; without it
    :class:`BodyTooLarge` is raised. A declared Content-Length over the limit is refused
    before reading anything. Each read is under the session's read timeout.
    """
    declared = response.content_length
    if not cut and declared is not None and declared > limit and not _encoded(response):
        raise BodyTooLarge(limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            if not cut:
                raise BodyTooLarge(limit)
            parts.append(chunk[: len(chunk) - (size - limit)])
            return b"".join(parts), True
        parts.append(chunk)
    return b"".join(parts), False


def _encoded(response: aiohttp.ClientResponse) -> bool:
    return bool(response.headers.get("Content-Encoding", "").strip())


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header, capped to ``[0, MAX_RETRY_AFTER_S]``.

    Delta seconds or an HTTP date. Huge, infinite and far-future values give the cap; negative
    values and past dates give 0; NaN, garbage and a date without a zone give None (no hint).
    """
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        seconds_or_none = _seconds_until(value, time.time() if now is None else now)
        if seconds_or_none is None:
            return None
        seconds = seconds_or_none
    if math.isnan(seconds):
        return None
    return min(MAX_RETRY_AFTER_S, max(0.0, seconds))


def _seconds_until(date: str, now: float) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    try:
        return when.timestamp() - now
    except (OverflowError, ValueError, OSError):
        return None
