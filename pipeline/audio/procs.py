"""A long chapter's pieces in processes, one per core, so that they really run at once.

Threads are enough for LAME, which lets go of the GIL for a whole block, but not for
decoding: an mp3 frame (24 ms of audio) is one short FFmpeg call, and two threads decoding
at once pass the GIL back and forth at every frame. Measuring a 45-minute chapter (the
chapter of ``bench/finishing.py``) on this 2-core machine took 3.7 s in one thread, 4.2 s in
two threads and 2.0 s in two processes, timed by hand.

The processes are spawned (never forked: the runner has threads; not from a fork server
either, whose death on a SIGTERM to the process group would look like every worker's),
started on first use in the background and kept for the rest of the program, shared by the
chapters being finished. They leave the program's process group, so that Ctrl-C or a
SIGTERM to the group does not reach them: it is the runner that decides to stop, through the
stop flag. They leave by themselves when the program is gone. Each call gets a small block
of shared memory: a stop flag, then one slot per job for the seconds of audio it has done.

As everywhere in ``multiprocessing``, the workers import the program's main module: a
script that finishes chapters must call the pipeline under ``if __name__ == "__main__":``.
When the processes cannot start or one dies, :class:`ProcessesFailed` says so and the
caller does the work in threads.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.shared_memory import SharedMemory
from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from pipeline.audio.control import FinishCancelled, Watch
from pipeline.audio.model import AudioError
from pipeline.audio.pieces import Feedback, results, run_on_cores, supervise, workers

T = TypeVar("T")
_PRELOAD = ("pipeline.audio.mp3cores", "pipeline.audio.bookcores")
_ORPHAN_CHECK_S = 0.5

# Work of at least this many input bytes (about two minutes of the API's mp3) goes to the
# processes: below it, starting them (once, about half a second) costs more than it wins.
PROCESSES_FROM_BYTES = 1 << 20

_pool: ProcessPoolExecutor | None = None
_warm: Future[None] | None = None  # the pool's workers started (set once they are)
_pool_lock = threading.Lock()
_WAIT_S = 0.05  # how often a caller waiting for the workers to start looks for a stop
_failed = False  # once the processes failed, the rest of the program uses threads
log = logging.getLogger(__name__)


class ProcessesFailed(AudioError):
    """The worker processes could not be started or died; threads can do the work instead."""


class Runner(Protocol):
    """``pieces.run_on_cores`` or :func:`run_in_processes`."""

    def __call__(self, jobs: Sequence[Callable[[Feedback], T]], watch: Watch) -> list[T]: ...


def on_cores(size: int, attempt: Callable[[Runner], T], watch: Watch) -> T:
    """``attempt`` with processes when ``size`` input bytes are worth them, else threads.

    When the processes fail, the warning is given once and ``attempt`` runs again in threads.
    """
    if not _failed and size >= PROCESSES_FROM_BYTES and workers() > 1:
        try:
            return attempt(run_in_processes)
        except ProcessesFailed as exc:
            # A signal to the whole process group ends the workers too: that is a stop.
            watch.check()
            _give_up_processes(exc)
            watch.restart()
    return attempt(run_on_cores)


def _give_up_processes(exc: ProcessesFailed) -> None:
    global _failed
    with _pool_lock:
        first, _failed = not _failed, True
    if first:  # two chapters failing at once: one warning
        log.warning("%s; finishing goes on in threads (slower)", exc)


def _quiet_worker(program: int) -> None:
    # Ctrl-C, or a SIGTERM to the whole process group, must not reach the workers: it is the
    # runner that decides to stop, and tells them (a worker killed by it would look like a
    # crash and send the rest of the run to threads). So they leave the program's process
    # group. They still obey a SIGTERM of their own: when one worker dies, the pool ends the
    # others with it, and a worker that ignored it would keep the program from ever exiting.
    try:
        os.setpgrp()
    except OSError:  # pragma: no cover - not allowed here: then at least ignore the group's
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # When the program is killed outright, nothing tells the workers: they leave by themselves
    # rather than wait forever for work.
    threading.Thread(target=_leave_with, args=(program,), daemon=True).start()


def _leave_with(program: int) -> None:
    while _alive(program):
        time.sleep(_ORPHAN_CHECK_S)
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"  # a zombie is dead
    except (OSError, IndexError):
        return False


def _shared_pool() -> ProcessPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            context = multiprocessing.get_context("spawn")
            _pool = ProcessPoolExecutor(
                workers(), mp_context=context, initializer=_quiet_worker, initargs=(os.getpid(),)
            )
        return _pool


def _forget_pool(broken: ProcessPoolExecutor) -> None:
    global _pool, _warm
    with _pool_lock:
        if _pool is broken:
            _pool, _warm = None, None
    broken.shutdown(wait=False, cancel_futures=True)


def _ready_pool(watch: Watch) -> ProcessPoolExecutor:
    """The shared pool with its workers running. Starting them (each imports PyAV and
    NumPy: about half a second, once) happens in a thread of its own, so that a stop asked
    for meanwhile is seen here at once."""
    pool = _shared_pool()
    warm = _warming(pool)
    while True:
        try:
            warm.result(timeout=_WAIT_S)
            return pool
        except TimeoutError:
            watch.check()
        except (OSError, RuntimeError, BrokenProcessPool) as exc:
            _forget_pool(pool)
            raise ProcessesFailed(f"the finishing processes did not start: {exc}") from exc


def _warming(pool: ProcessPoolExecutor) -> Future[None]:
    """The future of ``pool``'s workers started; their start is begun if it was not."""
    global _warm
    with _pool_lock:
        warm = _warm
        if warm is None or _pool is not pool:
            warm = _warm = Future()
            threading.Thread(target=_warm_up, args=(pool, warm), daemon=True).start()
    return warm


def prestart() -> bool:
    """Begin starting the workers now, in the background, and return at once; False when
    they are not to be used (one core, or they failed) or cannot be made.

    For a run that is going to finish a long chapter: their start (about 0.4 s of two
    processes importing PyAV and NumPy) then overlaps synthesis, which waits on the network,
    instead of delaying the chapter. A failure here is left for the first real call to meet
    and report (it then falls back to threads).
    """
    if _failed or workers() < 2:
        return False
    try:
        _warming(_shared_pool())
    except (OSError, RuntimeError):  # no semaphores (no /dev/shm), say
        return False
    return True


def submit_if_ready(fn: Callable[..., T], *args: object) -> Future[T] | None:
    """``fn(*args)`` on a worker when they are running (None when they are not, or failed):
    for small jobs sent from the event loop, which must never wait for the workers' start."""
    with _pool_lock:
        pool, warm = _pool, _warm
    if _failed or pool is None or warm is None or not warm.done() or warm.exception():
        return None
    try:
        return pool.submit(fn, *args)
    except (RuntimeError, OSError, BrokenProcessPool):  # shut down or broken meanwhile
        return None


def wait_for_workers(watch: Watch) -> None:
    """Start the workers if need be and wait until they run (a benchmark times this apart)."""
    _ready_pool(watch)


def _preload() -> None:
    """In a new worker: import what its jobs run (PyAV, NumPy) before the first job waits."""
    for name in _PRELOAD:
        importlib.import_module(name)


def _warm_up(pool: ProcessPoolExecutor, warm: Future[None]) -> None:
    try:
        for started in [pool.submit(_preload) for _ in range(workers())]:
            started.result()
    except BaseException as exc:  # handed to every caller waiting in _ready_pool
        warm.set_exception(exc)
    else:
        warm.set_result(None)


def stop_workers() -> None:
    """End the worker processes now (the next call starts new ones): for a benchmark that
    times a chapter with their start-up, as a run's first long chapter has it."""
    global _pool, _warm
    with _pool_lock:
        pool, _pool, _warm = _pool, None, None
    if pool is not None:
        pool.shutdown(wait=True)


def worker_pids() -> list[int]:
    """The worker processes alive now (for a benchmark's CPU count, and tests)."""
    with _pool_lock:
        pool = _pool
    processes = getattr(pool, "_processes", None) or {}
    return [pid for pid, process in list(processes.items()) if process.is_alive()]


class SharedFeedback(Feedback):
    """A job in another process: its slot of the shared block, and the stop flag."""

    def __init__(self, slots: npt.NDArray[np.float64], index: int) -> None:
        self._slots = slots
        self._index = index

    def check(self) -> None:
        if self._slots[0]:
            raise FinishCancelled("finishing stopped")

    def advance(self, seconds: float) -> None:
        self._slots[self._index] = seconds
        self.check()


def _run_job(job: Callable[[Feedback], T], name: str, index: int, count: int) -> T:
    """In the worker process: ``job`` with a SharedFeedback on the caller's block."""
    memory = SharedMemory(name)
    try:
        slots = np.ndarray((count,), dtype=np.float64, buffer=memory.buf)
        try:
            return job(SharedFeedback(slots, index))
        finally:
            del slots  # the block cannot close while an array still points into it
    finally:
        memory.close()


def run_in_processes(jobs: Sequence[Callable[[Feedback], T]], watch: Watch) -> list[T]:
    """Every job in a worker process; their results in order. Blocks the calling thread.

    The same contract as ``pieces.run_on_cores``: ``watch`` gets the jobs' progress from
    this thread; on a stop or any job's error the others stop within a block and are
    waited for. Jobs and their results must pickle.
    """
    count = len(jobs) + 1
    try:
        memory = SharedMemory(create=True, size=8 * count)
    except OSError as exc:  # no /dev/shm, say
        raise ProcessesFailed(f"no shared memory for the finishing processes: {exc}") from exc
    try:
        slots = np.ndarray((count,), dtype=np.float64, buffer=memory.buf)
        slots[:] = 0.0
        try:
            return _supervised(jobs, memory.name, slots, watch)
        finally:
            del slots
    finally:
        memory.close()
        memory.unlink()


def _supervised(
    jobs: Sequence[Callable[[Feedback], T]],
    name: str,
    slots: npt.NDArray[np.float64],
    watch: Watch,
) -> list[T]:
    futures: list[Future[T]] = []
    try:
        pool = _ready_pool(watch)
    except OSError as exc:
        raise ProcessesFailed(f"the finishing processes did not start: {exc}") from exc
    try:
        for index, job in enumerate(jobs):
            try:
                futures.append(pool.submit(_run_job, job, name, index + 1, len(slots)))
            except (RuntimeError, OSError) as exc:  # RuntimeError: the pool was shut down
                raise ProcessesFailed(f"the finishing processes did not start: {exc}") from exc
        supervise(futures, lambda: float(slots[1:].sum()), watch)
    finally:
        slots[0] = 1.0  # no-op for jobs already done; the others leave within a block
        for future in futures:
            future.cancel()  # those still queued behind another chapter's pieces
        for future in futures:
            if not future.cancelled():
                future.exception()  # waits: nothing of this call runs once it returns
        if any(_broke(f) for f in futures) or len(futures) < len(jobs):
            # Whatever ended this call (a stop, another error), the pool is of no more use.
            _forget_pool(pool)
    try:
        return results(futures)
    except BrokenProcessPool as exc:
        raise ProcessesFailed(f"a finishing process ended unexpectedly: {exc}") from exc


def _broke(future: Future[T]) -> bool:
    return not future.cancelled() and isinstance(future.exception(), BrokenProcessPool)
