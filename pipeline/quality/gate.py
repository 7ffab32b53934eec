"""The quality gate: a verdict per answer, and what accepted answers teach it.

The runner calls ``assess`` for each answer that decoded, and ``accept`` for the answer it
keeps as good (never for a flagged one: a bad chunk must not teach the model its badness).
State (the duration model, the loudness of each chapter and voice) is guarded by one lock
held only for dictionary work, never while measuring, so the gate may be shared by asyncio
tasks and worker threads alike; ``assess`` does numpy work worth a few milliseconds per
second of audio and may be run in a thread (``asyncio.to_thread``) for long answers.

A verdict made before its references exist (the voice's pace, the chapter's loudness) is
provisional. ``accept`` keeps provisional chunks and judges them again once the references
are learnt: it returns the refs of those that fail then, for the runner to request again.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.quality.config import QualityConfig
from pipeline.quality.measures import Measures, measure
from pipeline.quality.predict import DurationModel
from pipeline.quality.units import TextUnits, text_units

# The chunks of a chapter (or voice) whose median loudness is a reference.
LOUDNESS_REFERENCE_CHUNKS = 3
RULES = (
    "silent",
    "duration_short",
    "duration_long",
    "gap",
    "edge_silence",
    "clipped",
    "too_quiet",
    "too_loud",
    "loudness_jump",
)


@dataclass(frozen=True)
class Verdict:
    """One answer judged: the rules it breaks (none: ok), its measures and the references."""

    rules: tuple[str, ...]
    measures: Measures
    script: str
    speech_rate: float | None  # spoken units (CJK characters, Latin syllables) per second
    predicted_s: float | None
    loudness_diff_lu: float | None
    score: float  # 0 when ok; grows with the number of rules broken and by how much
    provisional: bool = False

    @property
    def ok(self) -> bool:
        return not self.rules

    def better_than(self, other: Verdict) -> bool:
        """True when this answer should be kept over ``other``: fewer and smaller faults."""
        return (len(self.rules), self.score) < (len(other.rules), other.score)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok, "rules": list(self.rules)}
        out["measures"] = self.measures.to_json()
        out["script"] = self.script
        for key, value in (
            ("speech_rate", self.speech_rate),
            ("predicted_s", self.predicted_s),
            ("loudness_diff_lu", self.loudness_diff_lu),
        ):
            if value is not None:
                out[key] = round(value, 3)
        return out


@dataclass(frozen=True)
class _Pending:
    ref: Hashable
    units: TextUnits
    voice: str
    speed: float
    chapter: str
    measures: Measures


class _Levels:
    """Loudness values kept sorted, for a median."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def add(self, value: float) -> None:
        bisect.insort(self.values, value)

    def median(self) -> float | None:
        n = len(self.values)
        if n < LOUDNESS_REFERENCE_CHUNKS:
            return None
        mid = n // 2
        return self.values[mid] if n % 2 else (self.values[mid - 1] + self.values[mid]) / 2


class QualityGate:
    """See the module docstring; one per run."""

    def __init__(self, config: QualityConfig | None = None) -> None:
        self.config = config or QualityConfig()
        self._lock = threading.Lock()
        self._model = DurationModel()
        self._chapters: dict[str, _Levels] = {}
        self._voices: dict[str, _Levels] = {}
        self._pending: list[_Pending] = []

    def assess(
        self,
        text: str,
        voice: str,
        speed: float,
        chapter: str,
        samples: npt.NDArray[np.generic],
        rate: int,
    ) -> Verdict:
        """The verdict on one answer's decoded mono ``samples`` at ``rate`` Hz."""
        return self.judge(text, voice, speed, chapter, measure(samples, rate))

    def judge(
        self, text: str, voice: str, speed: float, chapter: str, measures: Measures
    ) -> Verdict:
        """The verdict on measures already taken (``check`` and the tests use it)."""
        units = text_units(text)
        with self._lock:
            return self._judge(units, voice, speed, chapter, measures)

    def accept(
        self,
        text: str,
        voice: str,
        speed: float,
        chapter: str,
        verdict: Verdict,
        ref: Hashable = None,
    ) -> list[Hashable]:
        """Learn from an answer kept as good; returns refs of earlier chunks now found bad."""
        units = text_units(text)
        m = verdict.measures
        with self._lock:
            if units.spoken >= self.config.min_units:
                self._model.learn(voice, units, speed, m.speech_s)
            self._chapters.setdefault(chapter, _Levels()).add(m.loudness_lufs)
            self._voices.setdefault(voice, _Levels()).add(m.loudness_lufs)
            if verdict.provisional:
                self._pending.append(_Pending(ref, units, voice, speed, chapter, m))
            return self._review()

    def _review(self) -> list[Hashable]:
        late: list[Hashable] = []
        still: list[_Pending] = []
        for p in self._pending:
            again = self._judge(p.units, p.voice, p.speed, p.chapter, p.measures)
            if not again.ok:
                late.append(p.ref)
            elif again.provisional:
                still.append(p)
        self._pending = still
        return late

    def _judge(
        self, units: TextUnits, voice: str, speed: float, chapter: str, m: Measures
    ) -> Verdict:
        c = self.config
        found: dict[str, float] = {}  # rule -> how far past its threshold, relative
        if m.rms_dbfs < c.silent_dbfs or m.active_s <= 0:
            found["silent"] = (c.silent_dbfs - m.rms_dbfs) / 10
        predicted, timed_by_prior = self._duration(units, voice, speed, m, found)
        if m.longest_gap_s > c.max_gap_s:
            found["gap"] = m.longest_gap_s / c.max_gap_s - 1
        edge = max(m.leading_silence_s, m.trailing_silence_s)
        if edge > c.max_edge_silence_s and "silent" not in found:
            found["edge_silence"] = edge / c.max_edge_silence_s - 1
        if m.clipped_share > c.max_clipped_share:
            found["clipped"] = m.clipped_share / max(c.max_clipped_share, 1e-9) - 1
        if "silent" not in found:
            if m.loudness_lufs < c.min_loudness_lufs:
                found["too_quiet"] = (c.min_loudness_lufs - m.loudness_lufs) / 10
            if m.loudness_lufs > c.max_loudness_lufs:
                found["too_loud"] = (m.loudness_lufs - c.max_loudness_lufs) / 10
        reference = self._loudness_reference(voice, chapter)
        diff = None if reference is None else m.loudness_lufs - reference
        if diff is not None and abs(diff) > c.loudness_jump_lu and "silent" not in found:
            found["loudness_jump"] = abs(diff) / c.loudness_jump_lu - 1
        rules = tuple(rule for rule in RULES if rule in found)
        score = sum(1 + min(10.0, max(0.0, excess)) for excess in found.values())
        rate = units.spoken / m.active_s if m.active_s > 0 and units.spoken else None
        provisional = timed_by_prior or self._chapter_median(chapter) is None
        return Verdict(rules, m, units.script, rate, predicted, diff, score, provisional)

    def _duration(
        self, units: TextUnits, voice: str, speed: float, m: Measures, found: dict[str, float]
    ) -> tuple[float | None, bool]:
        """Checks the speech time; returns the prediction and whether only the prior made it."""
        c = self.config
        if units.spoken < c.min_units or "silent" in found:
            return None, False
        predicted = self._model.predict(voice, units, speed)
        by_prior = self._model.count(voice, units, speed) < c.warmup_chunks
        low, high = (c.prior_low, c.prior_high) if by_prior else (c.duration_low, c.duration_high)
        # A short text's time varies more (one pause, one long word): its band is wider.
        widen = 1 + c.short_text_units / max(units.total, 1.0)
        low, high = low**widen, high**widen
        ratio = m.speech_s / predicted if predicted > 0 else math.inf
        if ratio < low:
            found["duration_short"] = low / max(ratio, 1e-3) - 1
        elif ratio > high:
            found["duration_long"] = ratio / high - 1
        return predicted, by_prior

    def _chapter_median(self, chapter: str) -> float | None:
        levels = self._chapters.get(chapter)
        return levels.median() if levels else None

    def _loudness_reference(self, voice: str, chapter: str) -> float | None:
        """The chapter's median loudness so far, else the voice's across the run."""
        own = self._chapter_median(chapter)
        if own is not None:
            return own
        levels = self._voices.get(voice)
        return levels.median() if levels else None
