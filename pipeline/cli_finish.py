"""The CLI's part of issue 14 (long books): book tags and shards, the voice check, the
finishing estimate, the ``book`` command. Kept apart so that cli.py only calls in."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.cliargs import TOKEN_VARIABLE
from pipeline.errors import PipelineError, UsageError

if TYPE_CHECKING:
    from pipeline.cli import Environment
    from pipeline.coze.client import SpeechClient, Voice
    from pipeline.manifest import Job
    from pipeline.planning import Plan
    from pipeline.report import Totals
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

    try:
        listed = api.voices(target, timeout)
    except (PipelineError, OSError) as e:
        _unchecked(e)
        return
    _judge_voices(job, listed)


def voice_gate(job: Job, target: Target) -> Callable[[SpeechClient], Awaitable[None]]:
    """``check_voices`` as ``api.run_job``'s ``before_first_request``: the voice list comes
    over the run's own connection (no second session, handshake or local server); once the
    check has passed, a paid run says where it sends, just before the first request."""
    billed = f"tts-pipeline: sending to {target.host_id}, billed to ${TOKEN_VARIABLE}"
    announce = None if target.local else billed

    async def gate(client: SpeechClient) -> None:
        try:
            listed = await client.list_voices()
        except (PipelineError, OSError) as e:
            _unchecked(e)
        else:
            _judge_voices(job, listed)
        if announce is not None:
            print(announce, file=sys.stderr)

    return gate


def _unchecked(error: Exception) -> None:
    print(f"tts-pipeline: voices not checked: no voice list from the host ({error})",
          file=sys.stderr)


def _judge_voices(job: Job, listed: Sequence[Voice]) -> None:
    from pipeline.voicecheck import voice_problems

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


def run_output(args: argparse.Namespace, job: Job) -> OutputOptions:
    """The output options of ``run``: the job's, with the book's tags; no book from a shard."""
    from pipeline import cli  # its helpers; imported when called, cli imports this module

    options = cli._output_options(job.output, job)
    return finishing_options(options, job, cli._cache_dir(args, job), shard=bool(args.shard))


def cmd_book(args: argparse.Namespace, env: Environment) -> int:
    """``tts-pipeline book``: build the job's book from the chapter files in the output dir."""
    from pipeline import api, cli
    from pipeline.bookcmd import build_job_book
    from pipeline.settings import DEFAULT_MAX_CHUNK_BYTES

    args.shard = None  # the book is of the whole job
    job = cli._load(args, env)
    options = finishing_options(
        cli._output_options(job.output, job), job, cli._cache_dir(args, job), shard=False
    )
    plan = api.plan(job, DEFAULT_MAX_CHUNK_BYTES)
    path, built = build_job_book(plan, options, cli._out_dir(args, job))
    print(f"book {'written' if built else 'up to date'}: {path}", file=sys.stderr)
    return 0


def say_totals(t: Totals) -> None:
    """The end of every run: audio length, characters billed, retries."""
    print(
        f"tts-pipeline: {t.audio_seconds / 60:.1f} min of audio, {t.billed_characters} "
        f"characters billed, {t.retries} retries",
        file=sys.stderr,
    )
