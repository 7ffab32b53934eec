"""Why a run got 429s: the server's token bucket replayed on its own arrival timestamps.

The local server admits a request when its bucket (rate R, burst 1, full at the start) holds a
token at the request's arrival. Replaying that rule on ``stats.arrivals`` finds which arrivals
were refused, and the gap between each and the arrival before it: a gap a hair under 1/R says
the client paced at R and the refusal came from timing noise between its limiter and the
server, not from sending too fast on average.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import median
from typing import Any


def refused_arrivals(arrivals: Sequence[float], rate: float, burst: int = 1) -> list[int]:
    """Indices of the arrivals that a bucket of ``rate``/s and ``burst`` refuses."""
    refused = []
    tokens = float(burst)
    last = arrivals[0] if arrivals else 0.0
    for i, t in enumerate(arrivals):
        tokens = min(float(burst), tokens + (t - last) * rate)
        last = t
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            refused.append(i)
    return refused


def refusal_evidence(raw: dict[str, Any], limit: float) -> dict[str, Any]:
    """Refusals, the gaps (ms) before them, and the seconds each refusal cost in sending."""
    arrivals: list[float] = sorted(raw["arrivals"])
    refused = refused_arrivals(arrivals, limit)
    gaps = [1000 * (arrivals[i] - arrivals[i - 1]) for i in refused if i > 0]
    # After a refusal, the next arrival comes after the client's slow-down and pause.
    silences = [
        arrivals[i + 1] - arrivals[i] for i in refused if i + 1 < len(arrivals)
    ]
    interval = 1.0 / limit
    # Gaps while pacing (no pause between): before the first refusal they show how late the
    # limiter hands tokens out at the ceiling; after the last, the rate it settled at.
    first = refused[0] if refused else len(arrivals)
    last = refused[-1] + 1 if refused else len(arrivals)
    return {
        "pacing_gap_before_first_refusal_ms": _summary(_pacing(arrivals[:first], interval)),
        "pacing_gap_after_last_refusal_ms": _summary(_pacing(arrivals[last:], interval)),
        "refused": len(refused),
        "interval_ms": round(1000 / limit, 1),
        "gap_before_refusal_ms": _summary(gaps),
        "silence_after_refusal_s": _summary(silences),
        "first_refusal_s": round(arrivals[refused[0]] - arrivals[0], 3) if refused else None,
    }


def _pacing(arrivals: Sequence[float], interval: float) -> list[float]:
    """Gaps in ms between consecutive arrivals, pauses (over 3 intervals) left out."""
    return [
        1000 * (b - a)
        for a, b in zip(arrivals, arrivals[1:], strict=False)
        if b - a < 3 * interval
    ]


def _summary(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "min": round(min(values), 3),
        "median": round(median(values), 3),
        "max": round(max(values), 3),
    }
