"""A chapter cut into pieces, one per core: where parts lie, and the threads that do the work.

The first pass goes over the parts in contiguous groups, one group per thread; it learns
each part's decoded length, so that the second pass can cut the chapter at exact samples
(:func:`cut_points`) and each thread can decode just its range (:func:`span_blocks`).
PyAV lets go of the GIL while FFmpeg decodes, filters and encodes, so threads run at once.

The threads never call the progress callback (a runner may only take it on its own thread):
they count the audio they have done and check for a stop after every block; the calling
thread reports progress and waits (:func:`run_on_cores`). A stop, or an error in one piece,
makes every other piece stop within a block.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from pipeline.audio.control import FinishCancelled, Watch
from pipeline.audio.model import AudioError, ChapterSpec, Part
from pipeline.audio.process import Block, decode_blocks

T = TypeVar("T")
_WAIT_S = 0.1  # how often the calling thread reports progress and looks for a stop


def workers() -> int:
    """Threads for one chapter: one per core (the machine's, or the process's affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def pause_samples(part: Part, rate: int) -> int:
    """The silence after ``part``, in samples (what Timeline.pause_units counts for it)."""
    return (part.pause_after_ms * rate + 500) // 1000 if part.end_of_line else 0


def zeros(samples: int, channels: int, rate: int) -> Iterator[Block]:
    while samples > 0:
        n = min(rate, samples)
        yield np.zeros((channels, n), dtype=np.float32)
        samples -= n


def groups(spec: ChapterSpec, count: int) -> list[range]:
    """Part indices in ``count`` contiguous groups of about equal size on disk."""
    sizes = [max(1, part.path.stat().st_size) for part in spec.parts]
    total = sum(sizes)
    bounds = [0]
    running = 0
    for index, size in enumerate(sizes):
        running += size
        if running * count >= total * len(bounds) and len(bounds) < count:
            bounds.append(index + 1)
    bounds = sorted(set(bounds) | {len(sizes)})
    return [range(lo, hi) for lo, hi in zip(bounds, bounds[1:], strict=False) if hi > lo]


@dataclass(frozen=True)
class Span:
    """One part in the decoded chapter: its samples, then its pause."""

    content: int
    pause: int


def cut_points(spans: Sequence[Span], count: int, frame: int, least: int) -> list[int]:
    """Where to cut the chapter into ``count`` pieces: whole ``frame`` multiples.

    Each cut is taken in the middle of the pause nearest the even split (within an eighth of
    a piece), so a joint falls in silence where there is one. No piece is shorter than
    ``least`` samples; fewer pieces when the chapter is too short for ``count``.
    """
    total = sum(s.content + s.pause for s in spans)
    count = max(1, min(count, total // max(least, 1)))
    pauses, offset = [], 0
    for span in spans:
        offset += span.content
        if span.pause >= 2 * frame:
            pauses.append(offset + span.pause // 2)
        offset += span.pause
    cuts: list[int] = []
    for index in range(1, count):
        target = total * index // count
        near = [p for p in pauses if abs(p - target) <= total // (8 * count)]
        point = min(near, key=lambda p: abs(p - target)) if near else target
        cut = round(point / frame) * frame
        low = (cuts[-1] if cuts else 0) + least
        if low <= cut <= total - least:
            cuts.append(cut)
    return cuts


def span_blocks(
    spec: ChapterSpec, spans: Sequence[Span], rate: int, layout: str, start: int, end: int
) -> Iterator[Block]:
    """Samples ``start:end`` of the chapter (parts and pauses), decoding only what is needed."""
    channels = 1 if layout == "mono" else 2
    offset = 0
    for part, span in zip(spec.parts, spans, strict=True):
        if offset >= end:
            return
        if offset + span.content > start:
            yield from _part_range(part, spec, rate, layout, offset, start, end, span.content)
        lo = max(start, offset + span.content)
        hi = min(end, offset + span.content + span.pause)
        yield from zeros(hi - lo, channels, rate)
        offset += span.content + span.pause


def _part_range(
    part: Part,
    spec: ChapterSpec,
    rate: int,
    layout: str,
    offset: int,
    start: int,
    end: int,
    content: int,
) -> Iterator[Block]:
    position = offset
    for block in decode_blocks(part.path, spec.response_format, spec.sample_rate, rate, layout):
        n = block.shape[1]
        lo, hi = max(start, position), min(end, position + n)
        if hi > lo:
            yield block[:, lo - position : hi - position]
        position += n
        if position >= end:
            return
    if position - offset != content:
        raise AudioError(f"{part.path.name}: decoded to another length the second time")


class Feedback:
    """What a piece's thread sees: its own progress counter and the stop check."""

    def __init__(self, done: list[float], index: int, check: Callable[[], None]) -> None:
        self._done = done
        self._index = index
        self.check = check

    def advance(self, seconds: float) -> None:
        """This piece has ``seconds`` done; raise FinishCancelled when asked to stop."""
        self._done[self._index] = seconds
        self.check()


def run_on_cores(jobs: Sequence[Callable[[Feedback], T]], watch: Watch) -> list[T]:
    """Every job in its own thread; their results in order. Blocks the calling thread.

    ``watch`` gets the sum of the jobs' progress from this thread. On a stop (FinishCancelled
    from ``watch``) or any job's error, the others are told to stop and are waited for.
    """
    done = [0.0] * len(jobs)
    stop = threading.Event()

    def check() -> None:
        if stop.is_set():
            raise FinishCancelled("finishing stopped: another piece failed")
        watch.check()

    with ThreadPoolExecutor(len(jobs), thread_name_prefix="finish") as pool:
        futures = [pool.submit(job, Feedback(done, i, check)) for i, job in enumerate(jobs)]
        try:
            while True:
                finished, pending = wait(futures, _WAIT_S, FIRST_EXCEPTION)
                watch.advance(sum(done))
                if not pending or any(f.exception() is not None for f in finished):
                    break
        finally:
            stop.set()  # no-op for jobs already done; the others leave within a block
    errors = [e for f in futures if (e := f.exception()) is not None]
    if errors:
        # The first real error, not the FinishCancelled it caused in the other pieces.
        real = [e for e in errors if not isinstance(e, FinishCancelled)]
        raise (real or errors)[0]
    return [f.result() for f in futures]
