"""Finishing: a chapter's chunk files -> its chapter file (and subtitles); the chapters -> a book.

The runner calls these when a chapter's last chunk is in (``assemble``) and once at the end
(``build_book``); the CPU-heavy work runs in a worker thread so that synthesis goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from pipeline.audio import ChapterSpec, Part  # the model only: PyAV loads on first use
from pipeline.dubbing.model import DubOutcome, DubSpec, dub_lines, is_timed
from pipeline.errors import CODE_ASSEMBLY, PipelineError
from pipeline.formats import FILE_EXTENSIONS
from pipeline.planning import ChapterPlan
from pipeline.progress import ChapterEvent, Progress
from pipeline.report import ChapterError

if TYPE_CHECKING:
    from pipeline.runner import OutputOptions


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
    dubbing: dict[str, Any] | None = None  # timed track, clips, fit: report.json's dubbing
    refits: dict[str, float] = field(default_factory=dict)  # line id -> speed asked again


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
    )


async def assemble(
    state: ChapterState, output: OutputOptions, out_dir: Path
) -> ChapterError | None:
    """Write ``state``'s chapter file and note it in ``state``; the error if it cannot be."""
    if is_timed(state.plan) or output.clips:
        return await assemble_dubbed(state, output, out_dir)
    from pipeline.audio import assemble_chapter

    spec = chapter_spec(state, output, out_dir)
    try:
        result = await anyio.to_thread.run_sync(assemble_chapter, spec)
    except (PipelineError, OSError) as e:
        return ChapterError(CODE_ASSEMBLY, str(e), None, None)
    state.output = result.path
    state.duration_s = result.duration_s
    state.subtitles = [p.name for p in result.subtitle_paths]
    return None


def dub_spec(state: ChapterState, output: OutputOptions, out_dir: Path) -> DubSpec:
    plan = state.plan
    timed = is_timed(plan)
    return DubSpec(
        response_format=plan.response_format,
        sample_rate=plan.sample_rate,
        output_format=output.format,
        extension=output_extension(plan.response_format, output.format),
        out_dir=out_dir,
        chapter_id=plan.chapter.id,
        track_path=out_dir / output_name(plan, output) if timed else None,
        clips=output.clips,
        subtitles=output.subtitles,
        metadata={"title": plan.chapter.title or plan.chapter.id, "track": str(state.index + 1)},
    )


async def assemble_dubbed(
    state: ChapterState, output: OutputOptions, out_dir: Path
) -> ChapterError | None:
    """A timed chapter as a track of lines at their cue times; the clips of any chapter."""
    from pipeline.audio import assemble_chapter

    timed = is_timed(state.plan)
    if not timed:  # joined as usual, the clips beside it
        spec = chapter_spec(state, output, out_dir)
        try:
            result = await anyio.to_thread.run_sync(assemble_chapter, spec)
        except (PipelineError, OSError) as e:
            return ChapterError(CODE_ASSEMBLY, str(e), None, None)
    from pipeline.dubbing.chapter import dub_chapter  # PyAV and numpy: only when dubbing

    dspec = dub_spec(state, output, out_dir)
    lines = dub_lines(state.plan, state.parts)
    try:
        dubbed = await anyio.to_thread.run_sync(dub_chapter, dspec, lines)
    except (PipelineError, OSError) as e:
        return ChapterError(CODE_ASSEMBLY, str(e), None, None)
    _note_refits(dubbed, state)
    state.dubbing = dubbed.report(timed)
    if timed:
        assert dspec.track_path is not None and dubbed.duration_s is not None
        state.output, state.duration_s = dspec.track_path, dubbed.duration_s
        state.subtitles = [p.name for p in dubbed.subtitle_paths]
    else:
        state.output, state.duration_s = result.path, result.duration_s
        state.subtitles = [p.name for p in result.subtitle_paths]
    if output.fit_strict and (error := _strict_fit(dubbed)) is not None:
        state.output = None  # written, but the chapter did not meet the bar it was given
        return error
    return None


def _note_refits(dubbed: DubOutcome, state: ChapterState) -> None:
    for result in dubbed.results:
        result.refit_speed = state.refits.get(result.id)


def _strict_fit(dubbed: DubOutcome) -> ChapterError | None:
    over = [r for r in dubbed.results if r.overflow_s is not None]
    if not over:
        return None
    shown = ", ".join(f"{r.id} by {r.overflow_s:.2f} s" for r in over[:5])
    more = f" and {len(over) - 5} more" if len(over) > 5 else ""
    return ChapterError(
        CODE_ASSEMBLY,
        f"fit_strict: {len(over)} lines overflow their cue ({shown}{more}); the track was "
        "written, but raise max_speed, set fit: stretch, or shorten those lines",
        None,
        over[0].id,
    )


def chapter_written(state: ChapterState) -> ChapterEvent:
    assert state.output is not None
    return ChapterEvent(state.plan.chapter.id, "ok", state.output.name, state.duration_s, None)


async def write_book(
    states: list[ChapterState], output: OutputOptions, out_dir: Path, progress: Progress
) -> str | None:
    """The ``output.book`` file of every chapter; its name, or None when not written."""
    name = output.book
    if name is None:
        return None
    if any(s.output is None for s in states):
        progress.message(f"{name} not written: not every chapter was written")
        return None
    chapters = [
        (s.output, s.plan.chapter.title or s.plan.chapter.id)
        for s in states
        if s.output is not None
    ]
    path = out_dir / name
    from pipeline.audio import build_book

    try:
        await anyio.to_thread.run_sync(
            lambda: build_book(
                chapters,
                path,
                title=output.album,
                artist=output.artist,
                pcm_sample_rate=states[0].plan.sample_rate,
            )
        )
    except (PipelineError, OSError) as e:
        progress.message(f"{name} not written: {e}")
        return None
    progress.message(f"book written: {path}")
    return path.name
