"""Where a chunk's speech pauses: silence found in its decoded samples, for subtitle timing.

The samples are cut into 10 ms windows; a window is silent when its level is 35 dB under the
chunk's speaking level (its 90th percentile window) or under -55 dBFS, whichever is higher.
A run of silent windows of at least 120 ms strictly inside the chunk is a pause; silence at
the chunk's start or end is not (it is the chunk's edge, not a gap between its sentences).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pipeline.audio.process import Block, decode_blocks

_WINDOW_S = 0.01
_MIN_PAUSE_S = 0.12
_BELOW_SPEECH_DB = 35.0
_FLOOR_DB = -55.0


@dataclass(frozen=True)
class Pause:
    """A silence inside a chunk, in milliseconds from the chunk's own start."""

    start_ms: int
    end_ms: int

    @property
    def middle_ms(self) -> float:
        return (self.start_ms + self.end_ms) / 2


def find_pauses(levels_db: npt.NDArray[np.float64]) -> list[Pause]:
    """Pauses in a sequence of 10 ms window levels (dBFS)."""
    if not len(levels_db):
        return []
    speech = float(np.percentile(levels_db, 90))
    silent = levels_db < max(speech - _BELOW_SPEECH_DB, _FLOOR_DB)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], silent.astype(np.int8), [0]])))
    starts, ends = edges[0::2], edges[1::2]
    window_ms = round(_WINDOW_S * 1000)
    minimum = round(_MIN_PAUSE_S / _WINDOW_S)
    return [
        Pause(int(s) * window_ms, int(e) * window_ms)
        for s, e in zip(starts, ends, strict=True)
        if e - s >= minimum and s > 0 and e < len(silent)
    ]


@dataclass
class LevelMeter:
    """10 ms window levels of one chunk's audio, fed block by block."""

    rate: int
    _rest: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros(0, np.float32))
    _levels: list[npt.NDArray[np.float64]] = field(default_factory=list)

    def add(self, block: Block) -> None:
        window = max(1, round(self.rate * _WINDOW_S))
        mono = block.mean(axis=0) if block.shape[0] > 1 else block[0]
        joined = np.concatenate([self._rest, mono])
        whole = len(joined) // window * window
        power = (joined[:whole].reshape(-1, window).astype(np.float64) ** 2).mean(axis=1)
        with np.errstate(divide="ignore"):
            self._levels.append(10 * np.log10(np.maximum(power, 1e-12)))
        self._rest = joined[whole:]

    def pauses(self) -> list[Pause]:
        levels = np.concatenate(self._levels) if self._levels else np.zeros(0)
        return find_pauses(levels)


class PartLevels:
    """Window levels per chunk, fed (chunk index, block) as the chapter is decoded."""

    def __init__(self, rate: int) -> None:
        self._rate = rate
        self._meters: dict[int, LevelMeter] = {}

    def __call__(self, index: int, block: Block) -> None:
        meter = self._meters.get(index)
        if meter is None:
            meter = self._meters[index] = LevelMeter(self._rate)
        meter.add(block)

    def put(self, index: int, meter: LevelMeter) -> None:
        """Chunk ``index``'s levels, measured on their own (``partmeasure``)."""
        self._meters[index] = meter

    def pauses(self, count: int) -> list[list[Pause]]:
        return [self._meters[i].pauses() if i in self._meters else [] for i in range(count)]


def decoded_pauses(
    path: Path, response_format: str, sample_rate: int, rate: int, layout: str
) -> list[Pause]:
    """Decode one chunk file on its own and find its pauses (the lossless join's case)."""
    meter = LevelMeter(rate)
    for block in decode_blocks(path, response_format, sample_rate, rate, layout):
        meter.add(block)
    return meter.pauses()
