"""What a chunk's speech time should be, learnt from the run's own accepted chunks.

Per voice and script (a voice reads Chinese and English at different rates), the model keeps
the seconds per syllable unit at speed 1.0 of the last ``WINDOW`` accepted chunks and predicts
with their median: a robust online estimate that one odd chunk cannot move, and that follows
a voice whose pace drifts. Until a voice has chunks, ``PRIOR_S_PER_UNIT`` stands in: the
pace of ordinary read speech (about 4.5 syllables a second in English, 4 characters a
second in Chinese, with pauses counted as units too).
"""

from __future__ import annotations

import bisect
from collections import deque

from pipeline.quality.units import TextUnits

WINDOW = 101
PRIOR_S_PER_UNIT = {"latin": 0.19, "cjk": 0.23}


class _Window:
    """The last WINDOW values, also kept sorted for a cheap median."""

    def __init__(self) -> None:
        self.order: deque[float] = deque()
        self.sorted: list[float] = []

    def add(self, value: float) -> None:
        self.order.append(value)
        bisect.insort(self.sorted, value)
        if len(self.order) > WINDOW:
            self.sorted.pop(bisect.bisect_left(self.sorted, self.order.popleft()))

    def median(self) -> float:
        n = len(self.sorted)
        mid = n // 2
        return self.sorted[mid] if n % 2 else (self.sorted[mid - 1] + self.sorted[mid]) / 2

    def __len__(self) -> int:
        return len(self.order)


class DurationModel:
    """Seconds per unit at speed 1.0 per (voice, script, speed); the gate holds the lock.

    Speed is part of the key because a voice need not follow ``speed`` exactly (eSpeak stops
    at its own limits); until a speed has its own chunks, the voice's pace at its other
    speeds, scaled, stands in for it, and failing that the prior.
    """

    def __init__(self) -> None:
        self._paces: dict[tuple[str, str, float], _Window] = {}
        self._any_speed: dict[tuple[str, str], _Window] = {}

    def count(self, voice: str, units: TextUnits, speed: float) -> int:
        """How many accepted chunks the estimate for this voice, script and speed rests on."""
        window = self._paces.get((voice, units.script, round(speed, 2)))
        return len(window) if window else 0

    def predict(self, voice: str, units: TextUnits, speed: float) -> float:
        """The predicted speech time in seconds of ``units`` read by ``voice`` at ``speed``."""
        window = self._paces.get((voice, units.script, round(speed, 2)))
        window = window or self._any_speed.get((voice, units.script))
        pace = window.median() if window else PRIOR_S_PER_UNIT[units.script]
        return pace * units.total / max(speed, 1e-6)

    def learn(self, voice: str, units: TextUnits, speed: float, speech_s: float) -> None:
        if units.total <= 0 or speech_s <= 0:
            return
        pace = speech_s * speed / units.total
        self._paces.setdefault((voice, units.script, round(speed, 2)), _Window()).add(pace)
        self._any_speed.setdefault((voice, units.script), _Window()).add(pace)
