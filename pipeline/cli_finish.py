"""The CLI's part of issue 14 (long books): book tags and shards, the voice check, the
finishing estimate, the ``book`` command. Kept apart so that cli.py only calls in."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import PipelineError, UsageError

if TYPE_CHECKING:
    from pipeline.manifest import Job
    from pipeline.planning import Plan
    from pipeline.runner import OutputOptions
    from pipeline.settings import Target


def finishing_options(
    options: OutputOptions, job: Job, cache_dir: Path, *, shard: bool
) -> OutputOptions:
    """``options`` with the book's tags; a shard writes no (partial) book."""
    from pipeline.finishing import book_info_of

    info = book_info_of(job.book, cache_dir / "covers")
    title = info.title if info is not None and info.title else options.album
    return replace(options, book=None if shard else options.book, book_info=info, album=title)


def check_voices(job: Job, target: Target, timeout: float) -> None:
    """Refuse (exit 2) a job whose voices or emotions the host's voice list does not offer."""
    from pipeline import api
    from pipeline.voicecheck import voice_problems

    try:
        listed = api.voices(target, timeout)
    except (PipelineError, OSError) as e:
        print(f"tts-pipeline: voices not checked: no voice list from the host ({e})",
              file=sys.stderr)
        return
    problems = voice_problems(job, listed)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        raise UsageError(f"{len(problems)} voice problem(s); nothing was sent")


def print_finishing(plan: Plan, job: Job) -> None:
    from pipeline.finishing import estimate_finishing

    cores = os.cpu_count() or 1
    audio_s, finishing_s = estimate_finishing(plan, job.output, cores)
    print(
        f"finishing: about {audio_s / 60:.0f} min of audio (estimated from the text); joining, "
        f"loudness, encoding and the book about {finishing_s:.0f} s on {cores} cores"
    )


def write_job_book(job: Job, options: OutputOptions, out_dir: Path) -> int:
    """``tts-pipeline book``: build the job's book from the chapter files in ``out_dir``."""
    from pipeline import api
    from pipeline.bookcmd import build_job_book
    from pipeline.settings import DEFAULT_MAX_CHUNK_BYTES

    path, built = build_job_book(api.plan(job, DEFAULT_MAX_CHUNK_BYTES), options, out_dir)
    print(f"book {'written' if built else 'up to date'}: {path}", file=sys.stderr)
    return 0
