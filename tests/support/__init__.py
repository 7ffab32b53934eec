"""Test support shared by tests/ (``import support``) and bench/ (``import tests.support``)."""

from __future__ import annotations

from collections.abc import Sequence

from .fake_backend import FakeBackend, FakeResult, pcm_silence


def busiest_second(arrivals: Sequence[float]) -> int:
    """The most arrivals in any window of one second (sliding, window starts at an arrival)."""
    times = sorted(arrivals)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


__all__ = ["FakeBackend", "FakeResult", "busiest_second", "pcm_silence"]
