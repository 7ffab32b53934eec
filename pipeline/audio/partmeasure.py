"""Each part of a chapter measured on its own: what the chapter's first pass needs of it.

A part's length, K-weighted energy per 100 ms, level profile and (for subtitles) window
levels depend on its audio alone. So a run measures each answer as it arrives, in the
finishing worker processes while synthesis goes on, and a chapter whose parts are all
measured starts finishing at its second pass (limit and encode). Parts not measured by then
are measured in the first pass, the same way and with the same results: a chapter's file
does not depend on when its parts were measured.

Each part starts with the K-weighting filters at rest and its steps on its own 100 ms grid,
the last step short. The gating blocks that straddle two parts therefore read a little
differently from one long stream: far under a tenth of a LU on a chapter, as a test checks
against the NumPy reference meter.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.audio.energy import STEP_S, StepEnergy, Steps
from pipeline.audio.limiter import LevelProfile
from pipeline.audio.model import ChapterSpec
from pipeline.audio.pauses import LevelMeter, PartLevels
from pipeline.audio.pieces import Span, pause_samples
from pipeline.audio.process import Block, decode_blocks, probe_layout


@dataclass(frozen=True)
class PartMeasure:
    """One part, decoded at ``rate`` in ``layout`` and measured (it pickles: it crosses from
    the worker process that measured it)."""

    path: Path
    rate: int
    layout: str
    content: int  # samples
    steps: Steps  # K-weighted energy per 100 ms step, the last one short
    profile: LevelProfile
    levels: LevelMeter | None  # when subtitles want the part's pauses


class PartMeter:
    """A part's measurement, fed its decoded blocks in order."""

    def __init__(self, path: Path, rate: int, layout: str, with_levels: bool) -> None:
        self._path, self._rate, self._layout = path, rate, layout
        self._energy = StepEnergy(rate, layout)
        self._profile = LevelProfile(rate)
        self._levels = LevelMeter(rate) if with_levels else None
        self.content = 0

    def add(self, block: Block) -> None:
        self._energy.add(block)
        self._profile.add(block)
        if self._levels is not None:
            self._levels.add(block)
        self.content += block.shape[1]

    def result(self) -> PartMeasure:
        steps = self._energy.steps()
        return PartMeasure(
            self._path, self._rate, self._layout, self.content, steps, self._profile, self._levels
        )


def measure_part(
    path: Path,
    response_format: str,
    sample_rate: int,
    rate: int,
    layout: str | None,
    with_levels: bool,
) -> PartMeasure:
    """Decode one answer file and measure it (in its own layout when ``layout`` is None): a
    run's job for each answer as it comes in."""
    if layout is None:
        layout = probe_layout(path, response_format, sample_rate)
    meter = PartMeter(path, rate, layout, with_levels)
    for block in decode_blocks(path, response_format, sample_rate, rate, layout):
        meter.add(block)
    return meter.result()


def usable(
    spec: ChapterSpec, measures: Sequence[PartMeasure | None] | None, rate: int, layout: str,
    with_levels: bool,
) -> list[PartMeasure] | None:
    """``measures`` when every part has one that fits this chapter (same file, rate, layout,
    levels if wanted), else None: the first pass then measures the chapter itself."""
    if measures is None or len(measures) != len(spec.parts):
        return None
    fitting = []
    for part, m in zip(spec.parts, measures, strict=True):
        if m is None or m.path != part.path or (m.rate, m.layout) != (rate, layout):
            return None
        if with_levels and m.levels is None:
            return None
        fitting.append(m)
    return fitting


@dataclass(frozen=True)
class ChapterMeasure:
    """The parts' measures put end to end with their pauses."""

    spans: list[Span]
    steps: Steps
    profile: LevelProfile


def joined(spec: ChapterSpec, measures: Iterable[PartMeasure], rate: int) -> ChapterMeasure:
    step = round(rate * STEP_S)
    spans, steps, profiles = [], [], []
    for part, m in zip(spec.parts, measures, strict=True):
        pause = pause_samples(part, rate)
        spans.append(Span(m.content, pause))
        steps += [m.steps, np.zeros(pause // step)]
        profiles.append(m.profile)
        if pause:
            silence = LevelProfile(rate)
            silence.add(np.zeros((1, pause), dtype=np.float32))
            profiles.append(silence)
    return ChapterMeasure(spans, np.concatenate(steps), LevelProfile.joined(profiles))


def add_levels(levels: PartLevels, measures: Iterable[PartMeasure]) -> None:
    """Each part's window levels into the chapter's (for its subtitles' pauses)."""
    for index, m in enumerate(measures):
        if m.levels is not None:
            levels.put(index, m.levels)
