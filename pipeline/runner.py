"""Orchestration: chunks fan out to workers under a rate limiter and a concurrency cap.

The only module that knows all the others. Shape of a run:

- every chunk is looked up in the cache first; a hit sends nothing;
- a feeder puts the distinct missing keys, in manifest order, on a bounded stream read by the
  workers: chunks asking the same thing are one request, whose answer serves them all;
- a worker takes the key's claim (shared with other processes using the cache) and looks the
  key up again, then takes an in-flight slot, then a token from the rate limiter, then sends;
  transient errors are retried with full-jitter exponential backoff, outside the slot;
- a verified answer goes to the cache before its slot is released, so at most
  ``concurrency`` answers are paid for and not yet committed when a process is killed;
- when a chapter's last chunk is in, the assembler joins it (in a thread) into its file;
- a fatal answer cancels everything at once; Ctrl-C (or SIGTERM) stops feeding, gives the
  requests in flight a grace period, then cancels;
- report.json is written whatever happened.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from pipeline.aio import until_interrupted
from pipeline.audio.model import BookInfo  # the model only: PyAV loads on first use
from pipeline.backend import Backend
from pipeline.backoff import full_jitter
from pipeline.budget import BudgetMeter
from pipeline.cache import ChunkCache, OutputLock
from pipeline.dubbing.fit import RunnerAsk, refit_chapter
from pipeline.errors import (
    CODE_ASSEMBLY,
    CODE_STORAGE,
    CODE_TIMEOUT,
    ApiError,
    BudgetExhausted,
    FatalApiError,
    RateLimited,
    StorageError,
    TransientApiError,
)
from pipeline.finishing import (
    ChapterState,
    assemble,
    chapter_written,
    finish_context,
    output_extension,
    output_name,
    write_book,
)
from pipeline.gatekeeper import OFF, Gatekeeper, QualityConfig
from pipeline.limits import AdaptiveRateLimiter, RateLimit
from pipeline.lookup import (
    CacheLookup,
    Want,
    bought_once,
    claim_timeout_s,
    close_quietly,
    lookup_cache,
    store_answer,
    wants,
)
from pipeline.outcome import (
    chapter_report,
    describe,
    error_of,
    note_stale_outputs,
    plan_totals,
    read_previous_outputs,
    run_status,
)
from pipeline.planning import Chunk, Plan
from pipeline.progress import ChapterEvent, NullProgress, Progress
from pipeline.report import (
    ChapterError,
    RunReport,
    utc_now,
    write_report,
)

SpeechBackend = Backend  # the name this module used before backend.py


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 6  # attempts after the first, per chunk
    initial_s: float = 0.5
    max_s: float = 30.0


DEFAULT_RETRY_POLICY = RetryPolicy()


@dataclass(frozen=True)
class OutputOptions:
    format: str | None = None  # mp3 | opus | flac | m4a | wav: a chapter file unlike the API's
    loudness_lufs: float | None = None
    subtitles: tuple[str, ...] = ()
    book: str | None = None
    album: str | None = None
    artist: str | None = None
    book_info: BookInfo | None = None  # the book's tags: title, author, cover...
    clips: bool = False  # every line as its own file in <out>/<chapter id>/ (dubbing)
    fit_strict: bool = False  # a line that still overflows its cue fails its chapter


@dataclass(frozen=True)
class RunConfig:
    out_dir: Path
    cache_dir: Path
    host_id: str  # identifies the API in cache keys: a hit must come from the same host
    rate: RateLimit = field(default_factory=RateLimit)
    concurrency: int = 4
    retry: RetryPolicy = DEFAULT_RETRY_POLICY
    output: OutputOptions = field(default_factory=OutputOptions)
    attempt_timeout_s: float = 300.0
    interrupt_grace_s: float = 5.0
    handle_signals: bool = False
    write_report: bool = True
    budget_characters: int | None = None  # never send a request that would cross it
    report_extra: tuple[tuple[str, object], ...] = ()  # added to report.json as they are
    quality: QualityConfig = OFF  # the job's quality gate (the CLI turns it on by default)


@dataclass(frozen=True)
class _Item:
    chapter: int
    chunk: int
    key: str


_Users = list[tuple[int, int]]  # (chapter, chunk) of the chunks one request serves
_Sender = ObjectSendStream[int]


def _chapter_error(error: Exception, line_id: str) -> ChapterError:
    if isinstance(error, ApiError):
        return error_of(error, line_id)
    return ChapterError(CODE_STORAGE, str(error), None, line_id)


class _StorageFailed(Exception):
    """An answer was bought but the cache could not store it (disk full, read-only...)."""


class _Stopped(Exception):
    """Raised inside a retry loop when the run is stopping: start nothing new."""


class Runner:
    def __init__(
        self,
        plan: Plan,
        config: RunConfig,
        backend: SpeechBackend,
        progress: Progress | None = None,
        *,
        lookup: CacheLookup | None = None,
    ) -> None:
        self._plan = plan
        self._lookup = lookup  # a lookup made by the caller (for the budget) is not redone
        self._config = config
        self._backend = backend
        self._progress = progress or NullProgress()
        self._cache = ChunkCache(config.cache_dir)
        self._limiter = AdaptiveRateLimiter(config.rate)
        self._in_flight = anyio.CapacityLimiter(config.concurrency)
        self._states = [
            ChapterState(i, c, [None] * len(c.chunks), len(c.chunks))
            for i, c in enumerate(plan.chapters)
        ]
        self._totals = plan_totals(plan)
        self._fatal: ApiError | None = None
        self._stopping = False
        self._interrupted = False
        self._work_scope: anyio.CancelScope | None = None
        self._book: str | None = None
        self._budget = BudgetMeter(config.budget_characters)
        self._previous_outputs: dict[str, str] = {}
        self._keeper = Gatekeeper(config.quality, plan, self._cache, self._progress, self._states)
        self._finish = finish_context(config.output, config.out_dir, self._progress)  # issue 14

    @property
    def limiter(self) -> AdaptiveRateLimiter:
        return self._limiter

    async def run(self) -> RunReport:
        started = utc_now()
        with OutputLock(self._config.out_dir):  # makes the directory; ConfigError if it cannot
            self._previous_outputs = read_previous_outputs(self._config.out_dir)
            try:
                await self._run_guarded()
            finally:
                # Settling stores into the cache (a late chunk's good answer under its own
                # key): after close, its staging folder is gone and the put would fail.
                self._keeper.settle()
                await close_quietly(self._cache)
                report = self._report(started)
                if self._config.write_report:
                    write_report(self._config.out_dir, report)
        return report

    async def _run_guarded(self) -> None:
        todo = await anyio.to_thread.run_sync(self._lookup_cache)
        self._progress.start(
            chunks=self._totals.chunks,
            characters=self._totals.characters,
            cached=self._totals.cache_hits,
        )
        async with anyio.create_task_group() as outer:
            in_main_thread = threading.current_thread() is threading.main_thread()
            if self._config.handle_signals and in_main_thread:
                outer.start_soon(self._watch_signals)
            if self._finish.meter.choose(self._states, self._config.output):
                outer.start_soon(self._finish.meter.start_after_first_answer)
            try:
                await self._work(todo)
                if self._fatal is None and not self._interrupted:
                    self._book = await write_book(self._states, self._finish)
            finally:
                outer.cancel_scope.cancel()

    def _lookup_cache(self) -> list[Want]:
        found = self._lookup or lookup_cache(self._plan, self._cache, self._config.host_id)
        for ci, state in enumerate(self._states):
            state.keys = found.keys[ci]
            for k, path in enumerate(found.paths[ci]):
                if path is not None:
                    state.parts[k] = path
                    state.remaining -= 1
                    self._totals.cache_hits += 1
        return wants(found)

    async def _work(self, todo: list[Want]) -> None:
        # Twice the slots: a worker in a retry's backoff holds no slot, and another uses it.
        workers = max(2, 2 * self._config.concurrency)
        feed_send, feed_recv = anyio.create_memory_object_stream[Want](workers)
        done_send, done_recv = anyio.create_memory_object_stream[int](len(self._states) + 1)
        async with anyio.create_task_group() as tg:
            self._work_scope = tg.cancel_scope
            tg.start_soon(self._assembler, done_recv)
            async with done_send, feed_recv:
                for ci, state in enumerate(self._states):
                    if state.remaining == 0:
                        await done_send.send(ci)
                for _ in range(workers):
                    tg.start_soon(self._worker, feed_recv.clone(), done_send.clone())
            tg.start_soon(self._feed, feed_send, todo)

    async def _feed(self, send: ObjectSendStream[Want], todo: list[Want]) -> None:
        async with send:
            for want in todo:
                if self._stopping:
                    return
                if self._live(want):
                    await send.send(want)

    def _live(self, want: Want) -> _Users:
        """The chunks ``want`` serves whose chapters have not failed."""
        return [(ci, k) for ci, k in want.users if self._states[ci].error is None]

    async def _worker(self, recv: ObjectReceiveStream[Want], done: ObjectSendStream[int]) -> None:
        async with recv, done:
            async for want in self._keeper.items(recv):
                users = self._live(want)
                if self._stopping or not users:
                    continue
                ci, k = users[0]
                chunk = self._states[ci].plan.chunks[k]
                try:
                    path, cached = await self._obtain(_Item(ci, k, want.key), chunk, users)
                except _Stopped:
                    continue
                except BudgetExhausted as e:
                    # The requests in flight fit in the budget and are billed whatever happens
                    # to them: let them land, and start nothing new.
                    self._stop_gracefully(e)
                    continue
                except FatalApiError as e:
                    self._stop_fatal(e)
                    return
                except _StorageFailed as e:
                    self._fail_users(users, e)
                    self._stopping = True  # every answer bought from now on would be lost too
                    continue
                except ApiError as e:
                    # Rejected, or transient with every retry spent: these chapters fail.
                    self._fail_users(users, e)
                    continue
                await self._deliver(users, path, cached, done)

    async def _obtain(self, item: _Item, chunk: Chunk, users: _Users) -> tuple[Path, bool]:
        retry = self._config.retry
        timeout_s = claim_timeout_s(self._config.attempt_timeout_s, retry.retries, retry.max_s)
        try:
            buy = lambda: self._keeper.obtain(item, chunk, self._synthesize, users)  # noqa: E731
            return await bought_once(self._cache, item.key, timeout_s, buy)
        except StorageError as e:
            raise _StorageFailed(str(e)) from e

    async def _deliver(self, users: _Users, path: Path, cached: bool, done: _Sender) -> None:
        """``path`` answers every chunk in ``users``: all but the first are cache hits."""
        for n, (ci, k) in enumerate(users):
            state = self._states[ci]
            if state.error is not None:
                continue
            reused = cached or n > 0
            self._totals.cache_hits += reused
            state.parts[k] = path
            state.remaining -= 1
            self._finish.meter.add(ci, k, path)
            chunk = state.plan.chunks[k]
            self._progress.chunk_done(
                chapter_id=chunk.chapter_id, characters=chunk.characters, cached=reused
            )
            if state.remaining == 0:
                await done.send(ci)

    def _fail_users(self, users: _Users, error: Exception) -> None:
        for ci, k in users:
            state = self._states[ci]
            self._fail_chapter(state, _chapter_error(error, state.plan.chunks[k].line_id))

    def _stop_gracefully(self, error: FatalApiError) -> None:
        if self._fatal is None:
            self._fatal = error
            self._progress.message(f"stopping: {error.message}; waiting for the requests in flight")
        self._stopping = True

    def _stop_fatal(self, error: FatalApiError) -> None:
        if self._fatal is None:
            self._fatal = error
        self._stopping = True
        if self._work_scope is not None:
            self._work_scope.cancel()

    def _fail_chapter(self, state: ChapterState, error: ChapterError) -> None:
        if state.error is not None:
            return
        state.error = error
        self._progress.chapter_done(
            ChapterEvent(state.plan.chapter.id, "failed", None, None, describe(error))
        )

    async def _synthesize(self, item: _Item, chunk: Chunk) -> Path:
        policy = self._config.retry
        for failures in range(1, policy.retries + 2):
            if self._stopping:
                raise _Stopped
            try:
                return await self._attempt(item, chunk)
            except TransientApiError as error:
                if failures > policy.retries:
                    raise
                delay = full_jitter(policy.initial_s, policy.max_s, failures, error.retry_after)
                self._totals.retries += 1
                self._progress.retry(
                    chapter_id=chunk.chapter_id,
                    code=error.code,
                    message=error.message,
                    delay_s=delay,
                )
            await anyio.sleep(delay)
        raise AssertionError("unreachable: the last failure is raised")  # pragma: no cover

    async def _attempt(self, item: _Item, chunk: Chunk) -> Path:
        request = chunk.request()
        # The slot is held until the answer is committed (issue 18): at most `concurrency`
        # answers are ever paid for and not yet durable, so a kill pays at most that many twice.
        async with self._in_flight:
            ticket = await self._limiter.acquire()
            if self._stopping:
                raise _Stopped
            self._budget.reserve(chunk.characters, self._totals.billed_characters)
            self._totals.requests += 1
            try:
                with anyio.fail_after(self._config.attempt_timeout_s):
                    answer = await self._backend.synthesize(request)
                # The server answered with audio: that call is billed, whatever it is worth.
                self._totals.billed_characters += chunk.characters
            except TimeoutError as e:
                raise TransientApiError(
                    CODE_TIMEOUT, f"no answer within {self._config.attempt_timeout_s:g} s"
                ) from e
            except RateLimited as e:
                self._limiter.on_rate_limited(e.retry_after, ticket=ticket)
                raise
            finally:
                self._budget.release(chunk.characters)
            self._limiter.on_success()
            keeper = self._keeper

            def verify() -> None:  # check_audio, then the quality gate (in a worker thread)
                keeper.verify(item, chunk, answer.audio)

            return await store_answer(self._cache, item.key, answer.audio, chunk.params, verify)

    async def _assembler(self, done: ObjectReceiveStream[int]) -> None:
        async with done, anyio.create_task_group() as tg:
            async for ci in done:
                tg.start_soon(self._assemble, self._states[ci])

    async def _assemble(self, state: ChapterState) -> None:
        await refit_chapter(state, RunnerAsk(self, state))  # dubbing: fit speed (dubbing/fit.py)
        if (error := await assemble(state, self._finish)) is not None:
            self._fail_chapter(state, error)
        if state.output is None:
            return  # failed, or stopped (then still pending)
        assert state.duration_s is not None
        self._totals.audio_seconds += state.duration_s
        self._progress.chapter_done(chapter_written(state))

    async def _watch_signals(self) -> None:
        await until_interrupted(self._config.interrupt_grace_s, self._interrupt)
        if self._work_scope is not None:
            self._work_scope.cancel()

    def _interrupt(self) -> bool:
        self._finish.cancel.set()  # finishing is not paid for: stop it at once
        if self._stopping:
            return False  # a second Ctrl-C, or one while a fatal answer stops the run: now
        self._stopping = self._interrupted = True
        self._progress.message(
            f"interrupted: starting nothing new, waiting up to {self._config.interrupt_grace_s:g}"
            " s for the requests in flight (Ctrl-C again to stop at once)"
        )
        return True

    def _report(self, started: datetime) -> RunReport:
        chapters = [chapter_report(s, self._keeper.chapter_flags(s.index)) for s in self._states]
        fatal, no_book = self._fatal, self._config.output.book is not None and self._book is None
        status = run_status(chapters, fatal=fatal is not None, interrupted=self._interrupted,
                            book_stopped=no_book)
        report = RunReport(
            status=status,
            started_at=started,
            finished_at=utc_now(),
            totals=self._totals,
            chapters=chapters,
            error=None if fatal is None else error_of(fatal, None),
            book=self._book,
            extra=dict(self._config.report_extra),
        )
        self._keeper.finish_report(report)
        current = (output_name(s.plan, self._config.output) for s in self._states)
        note_stale_outputs(report, current, self._previous_outputs, self._config.out_dir,
                           self._progress.message)
        self._progress.finish(status=status, elapsed_s=report.elapsed_s)
        return report


async def run_plan(
    plan: Plan,
    config: RunConfig,
    backend: SpeechBackend,
    progress: Progress | None = None,
) -> RunReport:
    return await Runner(plan, config, backend, progress).run()


__all__ = [
    "CODE_ASSEMBLY",
    "CacheLookup",
    "DEFAULT_RETRY_POLICY",
    "OutputOptions",
    "RetryPolicy",
    "RunConfig",
    "Runner",
    "SpeechBackend",
    "lookup_cache",
    "output_extension",
    "run_plan",
]
