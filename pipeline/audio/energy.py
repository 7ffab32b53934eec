"""BS.1770 loudness from K-weighted energy per 100 ms, so that pieces can be measured apart.

FFmpeg's ``ebur128`` gives one integrated figure per stream, and the relative gate of that
figure depends on the whole chapter: two halves measured on two cores could not be put
together. Here each piece of a chapter goes through the K-weighting (FFmpeg ``biquad``
filters, the same two stages BS.1770 defines) and keeps only its energy per 100 ms step;
:func:`gated_loudness` gates the steps of all pieces at the end, as BS.1770 does.

Each part of a chapter is such a piece (``partmeasure``): it starts with the filters at
rest, as if silence came before it, mostly after a pause, and the blocks that straddle two
parts read a little differently.
"""

from __future__ import annotations

import math
from fractions import Fraction

import av
import av.filter
import numpy as np
import numpy.typing as npt

from pipeline.audio.avutil import av_errors
from pipeline.audio.loudness import SILENT_LUFS, GraphFeed, k_weighting_biquads

Block = npt.NDArray[np.float32]
Steps = npt.NDArray[np.float64]
STEP_S = 0.1  # BS.1770's gating blocks are 400 ms long and start every 100 ms


class StepEnergy(GraphFeed):
    """Sum of squared K-weighted samples per 100 ms step of one piece, fed block by block."""

    def __init__(self, rate: int, layout: str) -> None:
        super().__init__(rate, layout)
        self.step = round(rate * STEP_S)
        self._rest = np.zeros(0, dtype=np.float64)
        self._steps: list[Steps] = []
        with av_errors("measuring loudness"):
            self._graph = av.filter.Graph()
            node = self._graph.add_abuffer(
                format="fltp", sample_rate=rate, layout=layout, time_base=Fraction(1, rate)
            )
            for b, a in k_weighting_biquads(rate):
                names = ("b0", "b1", "b2", "a0", "a1", "a2")
                values = zip(names, (*b, *a), strict=True)
                args = ":".join(f"{name}={value!r}" for name, value in values)
                stage = self._graph.add("biquad", args)
                node.link_to(stage)
                node = stage
            node.link_to(self._graph.add("abuffersink"))
            self._graph.configure()

    def _drain(self) -> None:
        while True:
            try:
                out = self._graph.pull()
            except (av.BlockingIOError, av.EOFError):
                return
            weighted = out.to_ndarray()
            # Channel weights are 1 for mono and the two front channels (BS.1770).
            power = np.square(weighted, dtype=np.float64).sum(axis=0)
            joined = np.concatenate([self._rest, power])
            whole = len(joined) // self.step * self.step
            self._steps.append(joined[:whole].reshape(-1, self.step).sum(axis=1))
            self._rest = joined[whole:]

    def steps(self) -> Steps:
        """Every step's energy, the filters' tail included; the samples after the last whole
        step make one short step (the end of a part)."""
        with av_errors("measuring loudness"):
            self._graph.push(None)
            self._drain()
        found = list(self._steps)
        if len(self._rest):
            found.append(np.array([self._rest.sum()]))
        return np.concatenate(found) if found else np.zeros(0)


def gated_loudness(steps: Steps, step: int) -> float:
    """BS.1770-4 integrated loudness (LUFS) of a chapter's 100 ms step energies, in order.

    -inf when no 400 ms block is above the absolute gate (-70 LUFS).
    """
    if len(steps) < 4:
        return -math.inf
    blocks = (steps[:-3] + steps[1:-2] + steps[2:-1] + steps[3:]) / (4 * step)
    with np.errstate(divide="ignore"):
        levels = -0.691 + 10 * np.log10(blocks)
    above = levels > SILENT_LUFS
    if not above.any():
        return -math.inf
    relative = -0.691 + 10 * math.log10(float(blocks[above].mean())) - 10
    kept = blocks[above & (levels > relative)]
    return -0.691 + 10 * math.log10(float(kept.mean()))
