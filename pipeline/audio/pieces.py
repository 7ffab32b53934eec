"""A chapter cut into pieces, one per core: where parts lie, and the threads that do the work.

The first pass goes over the parts in contiguous groups, one group per core; it learns
each part's decoded length, so that the second pass can cut the chapter at exact samples
(:func:`cut_points`) and each job can read back just its range (:func:`span_blocks`).
PyAV lets go of the GIL while FFmpeg works: enough for an encoder's long calls, not for
decoding's one short call per frame, so a long chapter's jobs run in worker processes
(``procs``) and a short one's in threads here (:func:`run_on_cores`).

The threads never call the progress callback (a runner may only take it on its own thread):
they count the audio they have done and check for a stop after every block; the calling
thread reports progress and waits (:func:`run_on_cores`). A stop, or an error in one piece,
makes every other piece stop within a block.
"""

from __future__ import annotations

import math
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from pipeline.audio.control import FinishCancelled, Watch
from pipeline.audio.model import AudioError, ChapterSpec, Part
from pipeline.audio.process import Block, decode_blocks
from pipeline.audio.spill import SpillReader

T = TypeVar("T")
F = TypeVar("F")
_WAIT_S = 0.1  # how often the calling thread reports progress and looks for a stop
_PRE_S = 0.2  # covers the limiter's 90 ms look-behind and leaves an encoder 3+ frames to settle
_POST_S = 0.1


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
    return sized_groups([part.path.stat().st_size for part in spec.parts], count)


def sized_groups(sizes: Sequence[int], count: int) -> list[range]:
    """Indices of ``sizes`` in ``count`` contiguous groups of about equal total size."""
    sizes = [max(1, size) for size in sizes]
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


Piece = tuple[int, int, int, int | None]  # start, own start, end, frames kept (None: all)


def plan_pieces(
    spans: Sequence[Span], rate: int, frame: int, count: int, least_s: float
) -> list[Piece]:
    """Up to ``count`` pieces of whole ``frame``s, each with its pre-roll and look-ahead.

    A piece after the first starts encoding ``_PRE_S`` earlier (whole frames) and drops the
    frames of that pre-roll, so the encoder's state is warm where its kept frames begin; a
    piece before the last goes on ``_POST_S`` longer for the encoder's look-ahead.
    """
    total = sum(s.content + s.pause for s in spans)
    pre = math.ceil(_PRE_S * rate / frame) * frame
    post = math.ceil(_POST_S * rate / frame) * frame
    least = max(round(least_s * rate), 2 * pre)
    cuts = cut_points(spans, count, frame, least)
    starts, ends = [0, *cuts], [*cuts, total]
    pieces: list[Piece] = []
    for index, (own, stop) in enumerate(zip(starts, ends, strict=True)):
        last = index == len(starts) - 1
        keep = None if last else (stop - own) // frame
        pieces.append((max(0, own - pre), own, total if last else stop + post, keep))
    return pieces


def kept_frames(encoded: Iterable[F], piece: Piece, frame: int) -> list[F]:
    """The frames of ``piece`` that are its own: not the pre-roll's, not the look-ahead's."""
    return list(own_frames(encoded, piece, frame))


def own_frames(encoded: Iterable[F], piece: Piece, frame: int) -> Iterator[F]:
    """:func:`kept_frames` one by one; AudioError at the end when there were not as many."""
    start, own, _, keep = piece
    drop = (own - start) // frame
    count = 0
    for index, item in enumerate(encoded):
        if index >= drop and (keep is None or count < keep):
            count += 1
            yield item
    if keep is not None and count != keep:
        raise AudioError(f"the piece at sample {own} gave {count} frames, not {keep}")


def span_blocks(
    spec: ChapterSpec,
    spans: Sequence[Span],
    rate: int,
    layout: str,
    start: int,
    end: int,
    spills: SpillReader | None = None,
) -> Iterator[Block]:
    """Samples ``start:end`` of the chapter (parts and pauses), decoding only what is needed.

    A part the first pass kept in ``spills`` is read back from there instead of decoded.
    """
    channels = 1 if layout == "mono" else 2
    offset = 0
    for index, (part, span) in enumerate(zip(spec.parts, spans, strict=True)):
        if offset >= end:
            return
        if offset + span.content > start:
            lo, hi = max(start, offset), min(end, offset + span.content)
            kept = None if spills is None else spills.part_blocks(index, lo - offset, hi - lo)
            if kept is not None:
                yield from kept
            else:
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
    blocks = decode_blocks(part.path, spec.response_format, spec.sample_rate, rate, layout)
    reached = yield from sample_range(blocks, start - offset, end - offset)
    if reached < end - offset and reached != content:
        raise AudioError(f"{part.path.name}: decoded to another length the second time")


def sample_range(blocks: Iterable[Block], lo: int, hi: int) -> Generator[Block, None, int]:
    """Samples ``lo:hi`` of a stream of blocks; returns how far the stream was read: ``hi`` or
    more when it got there, else the stream's whole length."""
    position = 0
    for block in blocks:
        n = block.shape[1]
        a, b = max(lo, position), min(hi, position + n)
        if b > a:
            yield block[:, a - position : b - position]
        position += n
        if position >= hi:
            break
    return position


class Feedback(ABC):
    """What a piece's job sees, in a thread or another process: its progress and a stop."""

    @abstractmethod
    def check(self) -> None:
        """Raise FinishCancelled when the job is to stop."""

    @abstractmethod
    def advance(self, seconds: float) -> None:
        """This piece has ``seconds`` done; raise FinishCancelled when asked to stop."""


class ThreadFeedback(Feedback):
    """A job in a thread of this process: a slot of a list, and a check the caller gives."""

    def __init__(self, done: list[float], index: int, check: Callable[[], None]) -> None:
        self._done = done
        self._index = index
        self._check = check

    def check(self) -> None:
        self._check()

    def advance(self, seconds: float) -> None:
        self._done[self._index] = seconds
        self._check()


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
        futures = [pool.submit(job, ThreadFeedback(done, i, check)) for i, job in enumerate(jobs)]
        try:
            supervise(futures, lambda: sum(done), watch)
        finally:
            stop.set()  # no-op for jobs already done; the others leave within a block
    return results(futures)


def supervise(futures: Sequence[Future[T]], done: Callable[[], float], watch: Watch) -> None:
    """Report ``done()`` to ``watch`` until every job has ended or one has failed.

    Raises FinishCancelled from ``watch`` when asked to stop; the caller then tells the jobs.
    """
    while True:
        finished, pending = wait(futures, _WAIT_S, FIRST_EXCEPTION)
        watch.advance(done())
        if not pending or any(not f.cancelled() and f.exception() for f in finished):
            return


def results(futures: Sequence[Future[T]]) -> list[T]:
    """The jobs' results in order, or the first real error among them."""
    errors: list[BaseException] = []
    for future in futures:
        if future.cancelled():
            errors.append(FinishCancelled("finishing stopped before this piece began"))
        elif (error := future.exception()) is not None:
            errors.append(error)
    if errors:
        # The first real error, not the FinishCancelled it caused in the other pieces.
        real = [e for e in errors if not isinstance(e, FinishCancelled)]
        raise (real or errors)[0]
    return [f.result() for f in futures]
