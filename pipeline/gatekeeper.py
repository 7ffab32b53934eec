"""The runner's side of the quality gate (issue 17): ask again, keep the best, flag.

The runner makes one ``Gatekeeper`` per run and touches it at three places:

- ``verify(item, chunk, audio)`` inside the attempt, in the thread that stores the answer,
  before it is cached: ``check_audio``, then it decodes and judges the answer and raises
  ``AnswerRejected`` (not an API error: the transport retries never see it) when the gate
  refuses it;
- ``obtain(item, chunk, synthesize)`` around the attempt's retry loop: a refused answer is
  requested again, up to ``config.retries`` times, through the same ``synthesize`` (so every
  request takes the rate limiter, the in-flight slot and the budget, and is counted and
  billed); the first good answer is accepted; if none is, the best is kept and the chunk
  flagged (with ``strict``, the flag fails the chapter);
- ``items(recv)`` wraps the workers' stream: an answer accepted while the gate was still
  learning (``Verdict.provisional``) may be found bad later, when a later ``accept`` knows the
  voice's pace or the chapter's loudness; such a chunk comes out of ``items`` again, as a new
  item whose key is ``alternate_key(key)``, and its chapter waits for it (or is joined again).

A refused answer is never cached under its request's key: a later run must not take it as
good. The kept answer of a flagged chunk and the new answer of a late one go under
``alternate_key(key)``; ``settle()`` (end of run, before the cache closes) moves a late
chunk's good answer to its own key, where the bad one was.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import anyio
from anyio.abc import ObjectReceiveStream

from pipeline.cache import ChunkCache
from pipeline.errors import RequestRejected
from pipeline.finishing import ChapterState
from pipeline.formats import FILE_EXTENSIONS
from pipeline.lookup import Want
from pipeline.planning import Chunk, Plan
from pipeline.progress import Progress
from pipeline.quality.config import OFF, QualityConfig
from pipeline.report import RunReport

if TYPE_CHECKING:
    from pipeline.quality.gate import QualityGate, Verdict

# The chapter error code of a flag under ``strict`` (pipeline codes are negative).
CODE_QUALITY = -8


class _Item(Hashable, Protocol):
    @property
    def chapter(self) -> int: ...

    @property
    def chunk(self) -> int: ...

    @property
    def key(self) -> str: ...


ItemT = TypeVar("ItemT", bound=_Item)


class AnswerRejected(Exception):
    """An answer that decodes but that the quality gate refuses; carries it, to keep the best."""

    def __init__(self, audio: bytes, verdict: Verdict) -> None:
        super().__init__(f"quality: {', '.join(verdict.rules)}")
        self.audio = audio
        self.verdict = verdict


@dataclass(frozen=True)
class Flag:
    """A chunk no answer of which passed the gate: the best was kept."""

    chapter: str
    line: str  # the line's id
    file: str
    file_line: int | None
    chunk: int  # the chunk's position in its chapter
    requests: int  # answers judged for it
    verdict: Verdict

    def to_json(self) -> dict[str, Any]:
        return {
            "chapter": self.chapter,
            "line": self.line,
            "file": self.file,
            "file_line": self.file_line,
            "chunk": self.chunk,
            "requests": self.requests,
            "rules": list(self.verdict.rules),
            "measures": self.verdict.to_json(),
        }

    def where(self) -> str:
        at = f"{self.file}:{self.file_line}" if self.file_line is not None else self.file
        return f"{at} (chapter {self.chapter}, line {self.line})"


@dataclass
class QualityCounts:
    rejected: int = 0  # answers refused
    requests: int = 0  # requests made because of the gate (the extra ones)
    late: int = 0  # chunks accepted while learning and found bad later
    flagged: int = 0

    def to_json(self, enabled: bool) -> dict[str, Any]:
        return {"enabled": enabled, **dataclasses.asdict(self)}


def alternate_key(key: str) -> str:
    """A cache key of the same shape that no request body ever gives."""
    return hashlib.sha256(f"quality-kept:{key}".encode()).hexdigest()


@dataclass(frozen=True)
class _Accepted:
    path: Path
    voice: str
    speed: float
    text: str
    chapter: str
    verdict: Verdict
    users: tuple[tuple[int, int], ...]  # every chunk this answer went to (single flight)


class Gatekeeper:
    def __init__(
        self,
        config: QualityConfig,
        plan: Plan,
        cache: ChunkCache,
        progress: Progress,
        states: Sequence[ChapterState],
    ) -> None:
        self.config = config
        self.enabled = config.enabled
        self._gate_lock = threading.Lock()
        self._built_gate: QualityGate | None = None
        self._plan = plan
        self._cache = cache
        self._progress = progress
        self._states = states
        self._judged: dict[Any, Verdict] = {}  # item -> verdict of its last good answer
        self._provisional: dict[Any, _Accepted] = {}
        self._late: deque[Want] = deque()
        self._late_old: dict[Any, tuple[_Accepted, str]] = {}  # late item -> old, own key
        self._settle: list[tuple[str, Path]] = []  # (own key, good answer) of late chunks
        self.counts = QualityCounts()
        self.flags: dict[int, list[Flag]] = {}  # chapter index -> its flags

    def verify(self, item: _Item, chunk: Chunk, audio: bytes) -> None:
        """``check_audio``, then the gate's verdict (blocking: call it in a thread)."""
        # PyAV and numpy on first use: after the first answer, not before the first request.
        from pipeline.audio.check import check_audio

        params = chunk.params
        check_audio(audio, params.format, params.rate)
        if not self.enabled:
            return
        from pipeline.quality.measures import decode_answer  # numpy: only with the gate on

        samples, rate = decode_answer(audio, params.format, params.rate)
        verdict = self._gate.assess(
            chunk.text, params.voice_id, _speed(chunk), chunk.chapter_id, samples, rate
        )
        if not verdict.ok:
            raise AnswerRejected(audio, verdict)
        self._judged[item] = verdict

    @property
    def _gate(self) -> QualityGate:
        # Built on first use (verify calls it from worker threads): it loads numpy.
        with self._gate_lock:
            if self._built_gate is None:
                from pipeline.quality.gate import QualityGate

                self._built_gate = QualityGate(self.config)
            return self._built_gate

    async def obtain(
        self,
        item: ItemT,
        chunk: Chunk,
        synthesize: Callable[[ItemT, Chunk], Awaitable[Path]],
        users: Sequence[tuple[int, int]] = (),
    ) -> Path:
        """The chunk's answer: one the gate passed, else the best of ``retries + 1``.

        ``users`` are every (chapter, chunk) the answer goes to: a chunk found bad late is
        asked for again for all of them, not only for ``item``."""
        if not self.enabled:
            return await synthesize(item, chunk)
        old, own_key = self._late_old.pop(item, (None, item.key))
        best: AnswerRejected | None = None
        tries = self.config.retries if old is not None else self.config.retries + 1
        for n in range(tries):
            if n > 0 or old is not None:
                self.counts.requests += 1
            try:
                path = await synthesize(item, chunk)
            except AnswerRejected as rejected:
                self.counts.rejected += 1
                if best is None or rejected.verdict.better_than(best.verdict):
                    best = rejected
                continue
            served = tuple(users) or ((item.chapter, item.chunk),)
            self._accept(item, chunk, path, self._judged.pop(item), served)
            if old is not None:
                self._settle.append((own_key, path))
            return path
        return await self._keep_best(item, chunk, best, old, tries)

    async def items(self, recv: ObjectReceiveStream[Want]) -> AsyncIterator[Want]:
        """``recv``'s requests, each followed by those of the late chunks found while it was
        handled (a late chunk is asked for again under its own key, for itself alone)."""
        async for item in recv:
            yield item
            while self._late:
                yield self._late.popleft()
        while self._late:
            yield self._late.popleft()

    def settle(self) -> None:
        """Put each late chunk's good answer under its own key, where its bad one was.

        Before the cache is closed (the runner does it then): a closed cache has no staging
        folder, and the bad answer would be gone with nothing in its place."""
        for key, path in self._settle:
            try:
                data = path.read_bytes()
                shutil.rmtree(self._cache.path_for(key), ignore_errors=True)
                self._cache.put(key, data, path.suffix.lstrip("."))
            except OSError as e:
                # The chapter files are written: only a later run's cache hit is at stake.
                self._progress.message(f"quality: cannot replace a cache entry: {e}")
        self._settle.clear()

    def finish_report(self, report: RunReport) -> None:
        """The run's ``quality`` counts; the audio total, if a chapter was joined twice.

        Settles the cache too, if the runner has not (see the module docstring): a few files,
        and only when a chunk was found bad late, so it is not done in a thread."""
        self.settle()
        report.extra["quality"] = self.counts.to_json(self.enabled)
        if self.counts.late:
            report.totals.audio_seconds = sum(
                s.duration_s or 0.0 for s in self._states if s.output is not None
            )

    def chapter_flags(self, chapter: int) -> list[dict[str, Any]]:
        return [f.to_json() for f in self.flags.get(chapter, [])]

    def _accept(
        self,
        item: _Item,
        chunk: Chunk,
        path: Path,
        verdict: Verdict,
        users: tuple[tuple[int, int], ...],
    ) -> None:
        params = chunk.params
        voice, speed = params.voice_id, _speed(chunk)
        late = self._gate.accept(chunk.text, voice, speed, chunk.chapter_id, verdict, ref=item)
        if verdict.provisional:
            self._provisional[item] = _Accepted(
                path, voice, speed, chunk.text, chunk.chapter_id, verdict, users
            )
        for found_ref in late:
            ref: Any = found_ref
            found = self._provisional.pop(ref, None)
            if found is None:
                continue
            self.counts.late += 1
            # With retries 0 the late item is not requested again: obtain flags its old answer.
            again = dataclasses.replace(ref, key=alternate_key(ref.key))
            self._late_old[again] = (found, ref.key)
            # Each chapter it went to waits for it (and is joined again if it was already:
            # under the key of the new answer, so that finishing does not take the old join
            # as up to date).
            for chapter, index in found.users:
                state = self._states[chapter]
                state.remaining += 1
                if len(state.keys) > index:
                    keys = list(state.keys)
                    keys[index] = again.key
                    state.keys = tuple(keys)
            self._late.append(Want(again.key, found.users))

    def _rejudge(self, found: _Accepted) -> Verdict:
        return self._gate.judge(
            found.text, found.voice, found.speed, found.chapter, found.verdict.measures
        )

    async def _keep_best(
        self,
        item: _Item,
        chunk: Chunk,
        best: AnswerRejected | None,
        old: _Accepted | None,
        tries: int,
    ) -> Path:
        if old is not None:
            verdict = self._rejudge(old)
            if best is None or not best.verdict.better_than(verdict):
                self._flag(item, chunk, verdict, tries + 1)
                return old.path
        assert best is not None  # tries >= 1 when there is no old answer
        ext = FILE_EXTENSIONS[chunk.params.format]
        kept = best

        def store() -> Path:
            return self._cache.put(alternate_key(item.key), kept.audio, ext)

        path = await anyio.to_thread.run_sync(store)
        self._flag(item, chunk, best.verdict, tries + (old is not None))
        return path

    def _flag(self, item: _Item, chunk: Chunk, verdict: Verdict, requests: int) -> None:
        line = self._plan.chapters[item.chapter].chapter.lines[chunk.line_index]
        flag = Flag(
            chunk.chapter_id, chunk.line_id, line.file, line.lineno, item.chunk, requests, verdict
        )
        self.flags.setdefault(item.chapter, []).append(flag)
        self.counts.flagged += 1
        report = getattr(self._progress, "quality_flag", None)
        if report is not None:
            report(flag.to_json())
        else:
            self._progress.message(f"quality: {', '.join(verdict.rules)} at {flag.where()}")
        if self.config.strict:
            raise RequestRejected(
                CODE_QUALITY,
                f"quality: {', '.join(verdict.rules)} at {flag.where()}, after "
                f"{requests} answers (quality.strict)",
            )


def _speed(chunk: Chunk) -> float:
    return chunk.params.speed or 1.0


__all__ = [
    "CODE_QUALITY",
    "AnswerRejected",
    "Flag",
    "Gatekeeper",
    "OFF",
    "QualityConfig",
    "QualityCounts",
    "alternate_key",
]
