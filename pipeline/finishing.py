"""Finishing: a chapter's chunk files -> its chapter file (and subtitles); the chapters -> a book.

The runner calls these when a chapter's last chunk is in (``assemble``) and once at the end
(``build_book``); the CPU-heavy work runs in a worker thread so that synthesis goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from pipeline.audio import ChapterSpec, Part  # the model only: PyAV loads on first use
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
