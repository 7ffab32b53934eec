"""How long a worker waits before retrying a transient error: full-jitter exponential backoff.

A plain function rather than tenacity: the runner's loop is four lines, and building a
tenacity retrier per chunk cost more client CPU than the rest of the chunk's bookkeeping.
"""

from __future__ import annotations

import random


def full_jitter(initial_s: float, max_s: float, failures: int, retry_after: float | None) -> float:
    """The wait after ``failures`` failed attempts (1 after the first): uniform in
    [0, min(max_s, initial_s * 2 ** (failures - 1))], and never shorter than the server's
    ``Retry-After``. Jitter spreads the retries of many workers hit by one refusal."""
    high = min(max_s, initial_s * 2 ** max(0, failures - 1))
    delay = random.uniform(0.0, high)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


__all__ = ["full_jitter"]
