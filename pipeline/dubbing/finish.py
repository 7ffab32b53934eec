"""The finishing of a dubbed chapter in a run: its timed track or joined file, its clips.

Like any chapter's finishing (``pipeline.finishing.assemble``): it takes a core's slot, runs
in a worker thread, shows its progress, keeps what is intact from an earlier run with the
same inputs, and a stop (the context's ``cancel``) leaves the chapter pending with no file
written after it. Light: PyAV and numpy are imported by the thread's work, on first use.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from pipeline.audio.control import FinishCancelled
from pipeline.dubbing.model import DubOutcome, DubSpec, dub_lines, is_timed
from pipeline.errors import CODE_ASSEMBLY, PipelineError
from pipeline.report import ChapterError

if TYPE_CHECKING:
    from pipeline.finishing import ChapterState, FinishContext, Finished
    from pipeline.runner import OutputOptions


def dub_spec(state: ChapterState, output: OutputOptions, out_dir: Path) -> DubSpec:
    from pipeline.finishing import output_extension, output_name

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


def _dub(state: ChapterState, ctx: FinishContext) -> tuple[DubOutcome, Finished | None]:
    """The blocking work: the track and/or the clips, then the joined chapter when untimed.

    The chapter file comes last, so that a stop never leaves it on disk beside a chapter
    the report calls pending (the clips finished so far are kept, recorded, for next time).
    """
    from pipeline.dubbing.chapter import dub_chapter  # PyAV and numpy: only when dubbing
    from pipeline.finishing import _reporter, chapter_spec, finish_chapter

    chapter_id = state.plan.chapter.id
    lines = dub_lines(state.plan, state.parts, state.keys, state.refits)
    dubbed = dub_chapter(dub_spec(state, ctx.output, ctx.out_dir), lines,
                         progress=_reporter(ctx.progress, chapter_id), cancel=ctx.cancel)
    joined = None
    if not is_timed(state.plan):  # joined as usual (and kept when intact), the clips beside it
        spec = chapter_spec(state, ctx.output, ctx.out_dir)
        joined = finish_chapter(spec, state.keys, cancel=ctx.cancel,
                                progress=_reporter(ctx.progress, chapter_id))
    return dubbed, joined


async def assemble_dubbed(state: ChapterState, ctx: FinishContext) -> ChapterError | None:
    """A timed chapter as a track of lines at their cue times; the clips of any chapter.

    A stop leaves ``state.output`` None and returns None: the chapter is still pending.
    """
    from pipeline.finishing import FinishingProgress

    async with ctx.slots:
        if ctx.cancel.is_set():
            return None
        try:
            dubbed, joined = await anyio.to_thread.run_sync(partial(_dub, state, ctx))
        except FinishCancelled:
            return None
        except (PipelineError, OSError) as e:
            return ChapterError(CODE_ASSEMBLY, str(e), None, None)
    timed = joined is None
    state.dubbing = dubbed.report(timed)
    if joined is None:
        state.output = dub_spec(state, ctx.output, ctx.out_dir).track_path
        state.duration_s = dubbed.duration_s
        state.subtitles = [p.name for p in dubbed.subtitle_paths]
        state.fingerprint, state.reused = dubbed.fingerprint, dubbed.track_reused
    else:
        state.output, state.duration_s = joined.path, joined.duration_s
        state.subtitles = [p.name for p in joined.subtitle_paths]
        state.fingerprint, state.reused = joined.fingerprint, joined.reused
    if ctx.output.fit_strict and (error := _strict_fit(dubbed)) is not None:
        state.output = None  # written, but the chapter did not meet the bar it was given
        return error
    if isinstance(ctx.progress, FinishingProgress) and state.duration_s is not None:
        ctx.progress.finishing(chapter_id=state.plan.chapter.id, audio_s=state.duration_s,
                               done=True)
    return None


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
