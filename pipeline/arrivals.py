"""Answers measured as they arrive, so that a long chapter's finishing starts at its second pass.

Finishing an mp3 chapter with a loudness target reads it twice: a first pass measures
every part (lengths, loudness, levels), a second limits and encodes. The first pass depends
on each part alone (``pipeline.audio.partmeasure``), so a run does it for each answer as it
comes in, in the finishing worker processes, while synthesis, which waits on the network,
goes on. When the chapter's last answer is in, its measures are collected and finishing
goes straight to encoding. Any part whose measure is missing or failed makes the chapter
measure itself in full, with the same result.

Only chapters that will use the worker processes are measured: mp3 chapters that are
decoded (a loudness target, or another format from the API) and long enough. The event
loop never waits here: an answer that comes before the workers run is queued, and sent to
them once they do.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from pipeline.audio.control import FinishCancelled
from pipeline.audio.model import normalized_output_format
from pipeline.dubbing.model import is_timed

if TYPE_CHECKING:
    from pipeline.audio.partmeasure import PartMeasure
    from pipeline.finishing import ChapterState
    from pipeline.runner import OutputOptions

# A chapter with this much text to speak is about 4 minutes of audio: its parts come to
# about the size from which finishing runs in worker processes (procs.PROCESSES_FROM_BYTES,
# 1 MiB: 4.4 minutes of the API's 32 kbit/s mp3).
LONG_CHAPTER_BYTES = 4096
_WAIT_S = 0.1  # how often collecting the measures looks for a stop
# Measures sent to the workers and not done, at most: the rest wait here. The workers do
# not take Ctrl-C (the runner decides), and at exit the pool finishes what it was given, so
# a stop must find only a few short jobs there, not a resumed book's thousand parts.
_IN_FLIGHT = 4
log = logging.getLogger(__name__)


class ArrivalMeter:
    """The measures of one run's answers, by (chapter, chunk). Made in the run's event loop;
    chosen once the cache has been looked up (:meth:`choose`); fed from the event loop
    (:meth:`add`); started in a thread (:meth:`start`); read from the finishing threads
    (:meth:`measures`)."""

    def __init__(self, cancel: threading.Event) -> None:
        self._cancel = cancel  # the run's stop: nothing more is sent
        self._wanted: dict[int, tuple[str, int, bool]] = {}  # chapter -> format, rate, levels
        self._pending: deque[tuple[int, int, Path]] = deque()
        self._futures: dict[tuple[int, int], Future[Any]] = {}
        self._in_flight = 0
        # Re-entrant: a future done at once calls back into _send from inside it.
        self._lock = threading.RLock()
        self._started = False
        self._closed = False  # the run is over
        self._collected: set[int] = set()  # chapters whose measures were taken
        self._first = anyio.Event()  # the run's first answer is in
        self._starting = False
        self._ready = threading.Event()  # start() is over, the workers running or not

    def choose(self, states: Sequence[ChapterState], output: OutputOptions) -> bool:
        """The chapters to measure: still to synthesize, long, and finished on every core.
        True when there is one (the workers are then to be started)."""
        for ci, state in enumerate(states):
            plan = state.plan
            if state.remaining == 0 or is_timed(plan) or output.clips or not plan.chunks:
                continue
            if sum(c.utf8_bytes for c in plan.chunks) < LONG_CHAPTER_BYTES:
                continue
            fmt = normalized_output_format(plan.response_format, output.format)
            decoded = output.loudness_lufs is not None or fmt != plan.response_format
            if fmt == "mp3" and decoded:
                self._wanted[ci] = (plan.response_format, plan.sample_rate, bool(output.subtitles))
                # Parts already in the cache are measured too (a run resumed after a stop).
                self._pending.extend((ci, k, p) for k, p in enumerate(state.parts) if p)
        return bool(self._wanted)

    async def start_after_first_answer(self) -> None:
        """:meth:`start` in a thread once the first answer is in: never on the way to the
        first request. Abandoned at the end of a short run rather than waited for; the
        run's end (this task cancelled) closes the meter."""
        try:
            await self._first.wait()
            self._starting = True  # from here a chapter waits for the start (see measures)
            await anyio.to_thread.run_sync(self.start, abandon_on_cancel=True)
            await anyio.sleep_forever()  # until the run's end cancels this task
        finally:
            self.close()

    def start(self) -> None:
        """Start the worker processes and wait for them, then send what came meanwhile
        (blocking: a thread's job). Measuring is only ever a saving: whatever goes wrong
        here, the chapters measure themselves (and report a real failure there)."""
        from pipeline.audio.control import Watch
        from pipeline.audio.procs import prestart, wait_for_workers

        self._starting = True
        try:
            if not prestart():
                return
            wait_for_workers(Watch(None, None))
        except Exception:  # ProcessesFailed, OSError (no semaphores): measuring only saves time
            log.debug("answers are not measured as they arrive", exc_info=True)
            return
        else:
            self._started = True
            self._send()
        finally:
            self._ready.set()

    def close(self) -> None:
        """The run is over: nothing more is sent (what is with the workers finishes)."""
        with self._lock:
            self._closed = True
            self._pending.clear()
        self._ready.set()

    def add(self, ci: int, k: int, path: Path) -> None:
        """Chunk ``k`` of chapter ``ci`` is in at ``path``: have it measured."""
        self._first.set()
        if ci in self._wanted:
            with self._lock:  # _first_in_line replaces the queue
                self._pending.append((ci, k, path))
            if self._started:
                self._send()

    def _send(self) -> None:
        from pipeline.audio.partmeasure import measure_part
        from pipeline.audio.procs import submit_if_ready

        with self._lock:
            while self._pending and self._in_flight < _IN_FLIGHT and not self._stopped():
                ci, k, path = self._pending[0]
                if ci in self._collected:  # came too late for its chapter: of no use
                    self._pending.popleft()
                    continue
                fmt, rate, levels = self._wanted[ci]
                future = submit_if_ready(measure_part, path, fmt, rate, rate, None, levels)
                if future is None:  # the workers are gone: the chapters measure themselves
                    self._pending.clear()
                    return
                self._pending.popleft()
                self._futures[(ci, k)] = future
                self._in_flight += 1
                future.add_done_callback(self._done)

    def _stopped(self) -> bool:
        return self._closed or self._cancel.is_set()

    def _done(self, future: Future[Any]) -> None:
        with self._lock:
            self._in_flight -= 1
        self._send()

    def measures(
        self, ci: int, count: int, cancel: threading.Event | None
    ) -> list[PartMeasure | None] | None:
        """Chapter ``ci``'s measures, one per chunk (None where there is none), once those
        already sent are done; None when the chapter was not measured. Blocking."""
        if ci not in self._wanted:
            return None
        self._check(cancel)
        # The workers may still be starting (a short chapter comes in whole in less time):
        # the measures queued meanwhile are worth the wait, the first pass needs them too.
        while self._starting and not self._ready.wait(_WAIT_S):
            self._check(cancel)
        self._first_in_line(ci)
        while self._queued(ci):  # sent as others are done
            self._check(cancel)
            time.sleep(_WAIT_S / 2)
        with self._lock:
            self._collected.add(ci)  # anything of it sent from now on would be wasted
            futures = [self._futures.pop((ci, k), None) for k in range(count)]
        sent = [f for f in futures if f is not None]
        while wait(sent, timeout=_WAIT_S).not_done:
            self._check(cancel)
        return [_result(f) for f in futures]

    def _first_in_line(self, ci: int) -> None:
        """The chapter being finished goes before the others' measures still queued."""
        with self._lock:
            own = [item for item in self._pending if item[0] == ci]
            others = [item for item in self._pending if item[0] != ci]
            self._pending = deque(own + others)

    def _queued(self, ci: int) -> bool:
        with self._lock:
            if not self._started or self._stopped():
                return False  # never to be sent
            return any(c == ci for c, _, _ in self._pending)

    def _check(self, cancel: threading.Event | None) -> None:
        if (cancel is not None and cancel.is_set()) or self._cancel.is_set():
            raise FinishCancelled("finishing stopped")


def _result(future: Future[Any] | None) -> PartMeasure | None:
    if future is None or future.cancelled() or future.exception() is not None:
        return None  # a part that cannot be measured here fails in the chapter's own pass
    result: PartMeasure = future.result()
    return result
