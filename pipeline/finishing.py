"""Finishing: a chapter's chunk files -> its chapter file (and subtitles); the chapters -> a book.

The runner calls these when a chapter's last chunk is in (``assemble``) and once at the end
(``write_book``). The CPU-heavy work runs in worker threads, as many at once as there are
cores, so that synthesis goes on and chapters finish in parallel. A chapter (or book) whose
inputs hash to the fingerprint recorded beside its intact file is not built again. A stop
(Ctrl-C, SIGTERM) sets the context's ``cancel`` event: the threads see it within half a
second and leave no file behind, and the chapter stays pending.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import anyio

# Only the light model and control here: assembly and the book load PyAV and numpy, which
# a run needs after its first answer, never on the way to its first request (issue 18).
from pipeline.arrivals import ArrivalMeter
from pipeline.audio.chunkmap import ChunkSource, chunk_sources, keep_chunk_map, write_chunk_map
from pipeline.audio.control import FinishCancelled
from pipeline.audio.fingerprint import (
    book_fingerprint,
    chapter_fingerprint,
    forget_output,
    is_up_to_date,
    record_output,
    recorded_duration,
)
from pipeline.audio.model import BookInfo, ChapterSpec, Part
from pipeline.dubbing.model import is_timed
from pipeline.errors import CODE_ASSEMBLY, PipelineError
from pipeline.fileio import atomic_write_bytes
from pipeline.formats import FILE_EXTENSIONS
from pipeline.manifest.model import BookMeta, OutputSettings
from pipeline.planning import ChapterPlan, Plan
from pipeline.progress import ChapterEvent, Progress
from pipeline.report import ChapterError

if TYPE_CHECKING:
    from pipeline.audio.partmeasure import PartMeasure
    from pipeline.runner import OutputOptions

# A finishing progress event per chapter at most this often: enough for a bar and an ETA.
_PROGRESS_EVERY_S = 1.0


@runtime_checkable
class FinishingProgress(Protocol):
    """A Progress that also shows the finishing phase (audio seconds done per chapter)."""

    def finishing(self, *, chapter_id: str, audio_s: float, done: bool) -> None: ...


@runtime_checkable
class BookProgress(Protocol):
    """A Progress that also shows the book being built (audio seconds done)."""

    def book(self, *, name: str, audio_s: float, done: bool) -> None: ...


@dataclass(frozen=True)
class FinishContext:
    """What every chapter's finishing shares: options, where, progress, slots, the stop."""

    output: OutputOptions
    out_dir: Path
    progress: Progress
    cancel: threading.Event
    slots: anyio.CapacityLimiter  # one per core: finishing is CPU-bound
    meter: ArrivalMeter  # answers measured as they arrive


def finish_context(output: OutputOptions, out_dir: Path, progress: Progress) -> FinishContext:
    """A run's finishing context: one slot per core, a stop event not yet set."""
    slots = anyio.CapacityLimiter(os.cpu_count() or 1)
    cancel = threading.Event()
    return FinishContext(output, out_dir, progress, cancel, slots, ArrivalMeter(cancel))


@dataclass(frozen=True)
class Finished:
    """A chapter file on disk, built now or kept from an earlier run (``reused``)."""

    path: Path
    duration_s: float
    subtitle_paths: tuple[Path, ...]
    fingerprint: str | None
    reused: bool


@dataclass
class ChapterState:
    """One chapter during a run: its chunk files as they come in, then its outcome."""

    index: int  # 0-based position in the job: the track number is index + 1
    plan: ChapterPlan
    parts: list[Path | None]
    remaining: int
    error: ChapterError | None = None
    output: Path | None = None
    duration_s: float | None = None
    subtitles: list[str] = field(default_factory=list)
    keys: tuple[str, ...] = ()  # the chunks' cache keys: they stand for the audio
    fingerprint: str | None = None  # of the written chapter: the book's input
    reused: bool = False  # the file of an earlier run was up to date
    dubbing: dict[str, Any] | None = None  # timed track, clips, fit: report.json's dubbing
    refits: dict[str, float] = field(default_factory=dict)  # line id -> speed asked again
    # One join at a time: a chunk found bad late joins the chapter again, and that join must
    # land after (and not beside) one still running on the old answer.
    joining: anyio.Lock = field(default_factory=anyio.Lock, repr=False, compare=False)


def output_extension(response_format: str, output_format: str | None) -> str:
    return output_format or FILE_EXTENSIONS[response_format]


def output_name(plan: ChapterPlan, output: OutputOptions) -> str:
    """The chapter file's name in the output directory: ``<id>.<extension>``."""
    return f"{plan.chapter.id}.{output_extension(plan.response_format, output.format)}"


def chapter_spec(state: ChapterState, output: OutputOptions, out_dir: Path) -> ChapterSpec:
    """What ``assemble_chapter`` needs for ``state``, whose chunks are all in."""
    plan = state.plan
    chapter = plan.chapter
    parts = []
    for chunk, path in zip(plan.chunks, state.parts, strict=True):
        assert path is not None
        parts.append(
            Part(
                path=path,
                text=chunk.text,
                line_id=chunk.line_id,
                end_of_line=chunk.last_in_line,
                pause_after_ms=chunk.pause_after_ms,
            )
        )
    return ChapterSpec(
        parts=tuple(parts),
        response_format=plan.response_format,
        sample_rate=plan.sample_rate,
        out_path=out_dir / output_name(plan, output),
        output_format=output.format,
        loudness_lufs=output.loudness_lufs,
        title=chapter.title or chapter.id,
        album=output.album,
        track=state.index + 1,
        subtitles=output.subtitles,
        book=output.book_info,
    )


def finish_chapter(
    spec: ChapterSpec,
    keys: tuple[str, ...],
    *,
    progress: Callable[[float], None] | None = None,
    cancel: threading.Event | None = None,
    sources: Sequence[ChunkSource] | None = None,
    measures: Callable[[], Sequence[PartMeasure | None] | None] | None = None,
) -> Finished:
    """``spec``'s files, built unless the recorded ones are up to date; blocking.

    With ``sources`` (one per part), the chunk map is written beside the chapter file too
    (pipeline/audio/chunkmap.py); a kept chapter without its map is built again.
    ``measures`` gives the parts' measures made as they came in (``pipeline.arrivals``)."""
    fingerprint = chapter_fingerprint(spec, keys) if len(keys) == len(spec.parts) else None
    subtitle_paths = tuple(spec.out_path.with_suffix(f".{kind}") for kind in spec.subtitles)
    if fingerprint is not None and is_up_to_date(spec.out_path, fingerprint, subtitle_paths):
        duration = recorded_duration(spec.out_path)
        if duration is not None and (sources is None or keep_chunk_map(spec.out_path, sources)):
            return Finished(spec.out_path, duration, subtitle_paths, fingerprint, reused=True)
    # The record goes first: a rebuild that fails or is stopped is never taken as done.
    forget_output(spec.out_path)
    from pipeline.audio.assemble import assemble_chapter  # PyAV and numpy: first use only

    measured = measures() if measures is not None else None
    result = assemble_chapter(spec, progress=progress, cancel=cancel, measures=measured)
    if sources is not None:
        write_chunk_map(result.path, result.duration_s, result.cues, sources)
    if fingerprint is not None:
        record_output(
            result.path, fingerprint, result.subtitle_paths, duration_s=result.duration_s
        )
    return Finished(result.path, result.duration_s, result.subtitle_paths, fingerprint, False)


def _reporter(progress: Progress, chapter_id: str) -> Callable[[float], None] | None:
    """A callback for the finishing thread that shows its progress from the event loop."""
    if not isinstance(progress, FinishingProgress):
        return None
    return _throttled(partial(progress.finishing, chapter_id=chapter_id, done=False))


def _throttled(show: Callable[..., None]) -> Callable[[float], None]:
    """``show(audio_s=...)`` on the event loop, from a worker thread, once a second at most."""
    last = [0.0]

    def report(audio_s: float) -> None:
        now = time.monotonic()
        if now - last[0] < _PROGRESS_EVERY_S:
            return
        last[0] = now
        anyio.from_thread.run_sync(partial(show, audio_s=audio_s))

    return report


def _book_reporter(progress: Progress, name: str) -> Callable[[float], None] | None:
    """A callback for the book's building thread, as ``_reporter`` for a chapter."""
    if not isinstance(progress, BookProgress):
        return None
    return _throttled(partial(progress.book, name=name, done=False))


async def assemble(state: ChapterState, ctx: FinishContext) -> ChapterError | None:
    """Write ``state``'s chapter file and note it in ``state``; the error if it cannot be.

    A stop leaves ``state.output`` None and returns None: the chapter is still pending. So
    does a chunk asked for again meanwhile (``remaining``): its answer joins the chapter.
    """
    async with state.joining:
        if state.remaining > 0:
            return None
        return await _assemble_now(state, ctx)


async def _assemble_now(state: ChapterState, ctx: FinishContext) -> ChapterError | None:
    if is_timed(state.plan) or ctx.output.clips:
        from pipeline.dubbing.finish import assemble_dubbed  # it uses this module

        return await assemble_dubbed(state, ctx)
    spec = chapter_spec(state, ctx.output, ctx.out_dir)
    chapter_id = state.plan.chapter.id
    async with ctx.slots:
        if ctx.cancel.is_set():
            return None
        work = partial(
            finish_chapter,
            spec,
            state.keys,
            progress=_reporter(ctx.progress, chapter_id),
            cancel=ctx.cancel,
            sources=chunk_sources(state.plan),
            measures=partial(ctx.meter.measures, state.index, len(state.parts), ctx.cancel),
        )
        try:
            result = await anyio.to_thread.run_sync(work)
        except FinishCancelled:
            return None
        except (PipelineError, OSError) as e:
            return ChapterError(CODE_ASSEMBLY, str(e), None, None)
    state.output = result.path
    state.duration_s = result.duration_s
    state.subtitles = [p.name for p in result.subtitle_paths]
    state.fingerprint = result.fingerprint
    state.reused = result.reused
    if isinstance(ctx.progress, FinishingProgress):
        ctx.progress.finishing(chapter_id=chapter_id, audio_s=result.duration_s, done=True)
    return None


def chapter_written(state: ChapterState) -> ChapterEvent:
    assert state.output is not None
    return ChapterEvent(state.plan.chapter.id, "ok", state.output.name, state.duration_s, None)


def _build(
    chapters: list[tuple[Path, str]],
    path: Path,
    fingerprint: str | None,
    ctx: FinishContext,
    pcm_sample_rate: int,
) -> bool:
    """Build the book at ``path`` unless it is up to date; True when it was built."""
    if fingerprint is not None and is_up_to_date(path, fingerprint):
        return False
    forget_output(path)
    from pipeline.audio.book import build_book  # PyAV: first use only

    build_book(
        chapters,
        path,
        title=ctx.output.album,
        artist=ctx.output.artist,
        pcm_sample_rate=pcm_sample_rate,
        info=ctx.output.book_info,
        progress=_book_reporter(ctx.progress, path.name),
        cancel=ctx.cancel,
    )
    if fingerprint is not None:
        record_output(path, fingerprint)
    return True


async def write_book(states: list[ChapterState], ctx: FinishContext) -> str | None:
    """The ``output.book`` file of every chapter; its name, or None when not written."""
    name = ctx.output.book
    progress = ctx.progress
    if name is None:
        return None
    if any(s.output is None for s in states):
        progress.message(f"{name} not written: not every chapter was written")
        return None
    titles = [s.plan.chapter.title or s.plan.chapter.id for s in states]
    chapters = [(s.output, t) for s, t in zip(states, titles, strict=True) if s.output]
    path = ctx.out_dir / name
    fingerprint = None
    if all(s.fingerprint is not None for s in states):
        fps = [(s.fingerprint or "", t) for s, t in zip(states, titles, strict=True)]
        fingerprint = book_fingerprint(fps, path, ctx.output.book_info)
    rate = states[0].plan.sample_rate
    try:
        built = await anyio.to_thread.run_sync(_build, chapters, path, fingerprint, ctx, rate)
    except FinishCancelled:
        progress.message(f"{name} not written: stopped")
        return None
    except (PipelineError, OSError) as e:
        progress.message(f"{name} not written: {e}")
        return None
    if built and isinstance(progress, BookProgress):
        progress.book(name=name, audio_s=sum(s.duration_s or 0.0 for s in states), done=True)
    progress.message(f"book {'written' if built else 'up to date'}: {path}")
    return path.name


def book_info_of(meta: BookMeta | None, cover_dir: Path) -> BookInfo | None:
    """The job's ``book:`` metadata as the tags' BookInfo; a cover is written to ``cover_dir``.

    The cover file is named by its content, so a re-run finds the same file (and fingerprint).
    """
    if meta is None:
        return None
    cover = None
    if meta.cover is not None:
        suffix = ".png" if meta.cover.media_type == "image/png" else ".jpg"
        cover = cover_dir / f"cover-{hashlib.sha256(meta.cover.data).hexdigest()[:16]}{suffix}"
        if not cover.is_file():
            cover_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(cover, meta.cover.data)
    return BookInfo(
        title=meta.title,
        author=meta.author,
        narrator=meta.narrator,
        year=None if meta.year is None else str(meta.year),
        description=meta.description,
        language=meta.language,
        cover=cover,
    )


# What `plan` assumes for the finishing phase (bench/finishing.py measures it): the audio's
# length from its text, and real-time factors of one core.
_CJK_CHARS_PER_S = 4.5  # Mandarin read aloud: about 270 characters a minute
_OTHER_CHARS_PER_S = 14.0  # English read aloud: about 150 words a minute
_DECODING_X = 75.0  # decode, loudness, limiter, encode (mp3 at -18 LUFS), per core
_JOINING_X = 2000.0  # the lossless join: file copies and headers
_BOOK_X = 80.0  # the m4b: decode the chapters, encode AAC, per core


def estimate_finishing(
    plan: Plan, output: OutputSettings, cores: int
) -> tuple[float, float]:
    """(seconds of audio, seconds of finishing) that a run of ``plan`` would make.

    A rough guide: the audio's length is read from the characters; chapters that are encoded
    (and the book) are cut into pieces on ``cores``, a lossless join is one chapter per core.
    """
    per_chapter = []
    for chapter in plan.chapters:
        seconds = 0.0
        for chunk in chapter.chunks:
            cjk = sum(1 for ch in chunk.text if "\u3000" <= ch <= "\u9fff")
            seconds += cjk / _CJK_CHARS_PER_S + (len(chunk.text) - cjk) / _OTHER_CHARS_PER_S
            seconds += chunk.pause_after_ms / 1000
        per_chapter.append(seconds)
    audio_s = sum(per_chapter)
    cores = max(cores, 1)
    if output.loudness_lufs is not None or output.format is not None:
        # A long chapter is cut into a piece per core: every core works to the end.
        chapters_s = audio_s / (_DECODING_X * cores)
    else:
        chapters_s = max(audio_s / cores, max(per_chapter, default=0.0)) / _JOINING_X
    book_s = audio_s / (_BOOK_X * cores) if output.book else 0.0
    return audio_s, chapters_s + book_s
