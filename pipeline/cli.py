"""Command line: argument parsing and printing only. The one module that reads the environment.

Every error becomes a message and an exit status here: 0 done, 1 some chapters failed,
2 bad command line or input (nothing sent), 3 stopped by a fatal API answer, 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import cli_finish
from pipeline.advice import fatal_advice
from pipeline.budget import check_budget
from pipeline.cli_books import cmd_import, local_voice_languages, print_skipped
from pipeline.cliguard import (
    check_chosen_base_url,
    check_writable,
    checked_token,
    json_for_terminal,
    redactor_for,
    say,
    say_text,
    silence_stdout,
)
from pipeline.errors import ConfigError, FatalApiError, ManifestError, PipelineError, UsageError
from pipeline.formats import FILE_EXTENSIONS, SAY_FORMATS
from pipeline.redact import Redactor
from pipeline.report import ReportNotWritten
from pipeline.settings import (
    DEFAULT_BURST,
    LOCAL_DEFAULT_VOICES,
    Target,
    TargetChoice,
    choose_backend,
    choose_target,
    merge_run,
)
from pipeline.speech import SpeechParams

if TYPE_CHECKING:
    from pipeline.cireports import CiReports
    from pipeline.manifest import Job, OutputSettings, Overrides
    from pipeline.planning import Plan
    from pipeline.quality.config import QualityConfig
    from pipeline.report import RunReport
    from pipeline.runner import OutputOptions, RunConfig

from pipeline.cliargs import (
    BASE_VARIABLE,
    SUMMARY_VARIABLE,
    TOKEN_VARIABLE,
    build_parser,
)


@dataclass(frozen=True)
class Environment:
    token: str | None
    base_url: str | None
    step_summary: Path | None = None

    @classmethod
    def read(cls, environ: Mapping[str, str]) -> Environment:
        summary = environ.get(SUMMARY_VARIABLE)
        return cls(
            environ.get(TOKEN_VARIABLE) or None,
            environ.get(BASE_VARIABLE) or None,
            Path(summary) if summary else None,
        )

    def __repr__(self) -> str:
        token = "set" if self.token else "unset"
        return f"Environment(token={token}, base_url={self.base_url!r})"


# ---------------------------------------------------------------- resolution


def _overrides(args: argparse.Namespace) -> Overrides:
    from pipeline.manifest import Overrides

    return Overrides(
        voice_id=getattr(args, "voice", None),
        response_format=getattr(args, "format", None),
        sample_rate=getattr(args, "sample_rate", None),
    )


def _target(
    args: argparse.Namespace,
    env: Environment,
    job: Job | None,
    *,
    require_token: bool = True,
) -> Target:
    if args.local and args.backend == "coze":
        raise UsageError("--local and --backend coze contradict each other; give one")
    choice = TargetChoice(
        backend="local" if args.local else args.backend,
        base_url=args.base_url,
        fallback_base_url=env.base_url,
        engine=args.engine,
    )
    run = job.run if job is not None else None
    token = None
    if choose_backend(choice, run.backend if run else None) == "coze":
        token = checked_token(env.token, TOKEN_VARIABLE)
        _check_base_url(args, env, run.base_url if run else None)
    try:
        target = choose_target(
            choice, run.backend if run else None, run.base_url if run else None, token or ""
        )
    except (ConfigError, ValueError) as e:
        raise UsageError(f"--base-url: {say_text(str(e))}") from None
    if not target.local and not token and require_token:
        raise UsageError(
            f"no API token: set {TOKEN_VARIABLE} to a Coze access token with the createSpeech "
            "permission, or pass --local to use the embedded local server"
        )
    return target


def _check_base_url(args: argparse.Namespace, env: Environment, job_url: str | None) -> None:
    """The URL a run will use, checked where it came from (the first given wins)."""
    for url, where in (
        (args.base_url, "--base-url"),
        (env.base_url, f"${BASE_VARIABLE}"),
        (job_url, f"{args.source} run.base_url" if hasattr(args, "source") else "run.base_url"),
    ):
        if url is not None:
            check_chosen_base_url(url, where, redactor_for(env.token))
            return


def _out_dir(args: argparse.Namespace, job: Job) -> Path:
    if args.out is not None:
        chosen = Path(args.out)
    elif job.output.dir is not None:
        chosen = job.output.dir
    else:
        chosen = Path("out") / args.source.stem
    return Path(os.path.normpath(chosen))


def _run_config(args: argparse.Namespace, job: Job, target: Target) -> RunConfig:
    from pipeline.limits import RateLimit
    from pipeline.runner import RetryPolicy, RunConfig

    merged = merge_run(job.run, qps=args.qps, concurrency=args.concurrency, retries=args.retries)
    extra: dict[str, object] = {"source": str(args.source)}
    if args.shard is not None:
        extra["shard"] = args.shard.to_json()
    return RunConfig(
        out_dir=_out_dir(args, job),
        cache_dir=_cache_dir(args, job),
        host_id=target.host_id,
        rate=RateLimit(qps=merged.qps, burst=args.burst or DEFAULT_BURST),
        concurrency=merged.concurrency,
        retry=RetryPolicy(retries=merged.retries),
        output=cli_finish.run_output(args, job),
        handle_signals=True,
        budget_characters=args.budget_characters,
        report_extra=tuple(extra.items()),
        quality=_quality(job, args.quality_strict),
    )


def _quality(job: Job, strict: bool) -> QualityConfig:
    from pipeline.quality.config import QualityConfig

    config = job.quality or QualityConfig()
    return dataclasses.replace(config, strict=True) if strict and config.enabled else config


def _output_options(output: OutputSettings, job: Job) -> OutputOptions:
    from pipeline.runner import OutputOptions

    return OutputOptions(
        format=output.format,
        loudness_lufs=output.loudness_lufs,
        subtitles=output.subtitles,
        book=output.book,
        album=job.source.stem,
        clips=output.clips,
        fit_strict=output.fit_strict,
    )


def _plan(args: argparse.Namespace, job: Job) -> Plan:
    from pipeline import api

    merged = merge_run(job.run, max_chunk_bytes=args.max_chunk_bytes)
    try:
        return api.plan(job, merged.max_chunk_bytes)
    except ConfigError as e:
        raise UsageError(str(e)) from e


def _load(args: argparse.Namespace, env: Environment) -> Job:
    from pipeline import api

    # A line that holds the token (a text_file of /proc/self/environ...) is refused before
    # it can be sent, planned or written into subtitles.
    redactor = redactor_for(env.token)
    holds_token = redactor.found_in if redactor.found_in("x" + (env.token or "").strip()) else None
    languages = local_voice_languages(args)
    return api.load(
        args.source,
        _overrides(args),
        getattr(args, "shard", None),
        languages,
        holds_token=holds_token,
    )


# ---------------------------------------------------------------- commands


def cmd_validate(args: argparse.Namespace, env: Environment) -> int:
    job = _load(args, env)
    if args.online:
        cli_finish.check_voices(job, _target(args, env, job, require_token=False), args.timeout)
    lines = sum(len(c.lines) for c in job.chapters)
    say(f"{args.source}: ok: {len(job.chapters)} chapters, {lines} lines", file=sys.stdout)
    return 0


def cmd_plan(args: argparse.Namespace, env: Environment) -> int:
    from pipeline import api

    job = _load(args, env)
    plan = _plan(args, job)
    qps = merge_run(job.run, qps=args.qps).qps
    target = _target(args, env, job, require_token=False)
    found = api.lookup(plan, _cache_dir(args, job), target)
    if args.json:
        print(json_for_terminal(api.plan_json(plan, qps, found)))
    else:
        from pipeline.cli_plan import print_plan

        print_plan(plan, qps, found)
        cli_finish.print_finishing(plan, job)
        print_skipped(job)
    return 0


def _cache_dir(args: argparse.Namespace, job: Job) -> Path:
    return Path(args.cache_dir) if args.cache_dir else _out_dir(args, job) / ".cache"


def cmd_run(args: argparse.Namespace, env: Environment) -> int:
    from pipeline import api
    from pipeline.malloc import keep_freed_memory
    from pipeline.progress import make_progress

    job = _load(args, env)
    target = _target(args, env, job)
    _ci_reports(args, env).check()
    plan = _plan(args, job)
    config = _run_config(args, job, target)
    found = api.lookup(plan, config.cache_dir, target)
    budget = check_budget(plan.chunk_count, found, args.budget_characters)
    if budget.over:
        raise UsageError(
            f"this run would bill {budget.billable_characters} characters "
            f"({budget.chunks_to_send} chunks not in the cache), over "
            f"--budget-characters {budget.budget}; nothing was sent"
        )
    # Issue 14: the voices are checked before the first paid request, on the run's connection.
    gate = cli_finish.voice_gate(job, target)
    progress = make_progress(args.progress, stderr_is_tty=sys.stderr.isatty())
    keep_freed_memory()  # issue 18: no page faults and zeroed pages again for every answer
    try:
        report = api.run_job(
            plan, config, target, read_timeout=args.timeout, progress=progress, found=found,
            before_first_request=gate,
        )  # fmt: skip
    except ReportNotWritten as e:  # the paid run is on disk: tell what it did, then why not
        code = _finish_run(e.report, config.out_dir, target, report_written=False)
        say(f"tts-pipeline: error: report.json was not written: {e}; the chapter files are "
            f"kept in {config.out_dir}/")
        return max(code, 1)
    failed = _ci_reports(args, env).write_or_why(report.to_json())
    code = _finish_run(report, config.out_dir, target)
    if failed is None:
        return code
    kept = config.out_dir / "report.json"
    say(f"tts-pipeline: error: {failed}; the run's report is kept in {kept}")
    return max(code, 1)


def _ci_reports(args: argparse.Namespace, env: Environment) -> CiReports:
    from pipeline.cireports import CiReports

    return CiReports(
        junit=args.junit,
        print_summary=args.summary,
        step_summary=env.step_summary,
        step_summary_name=f"${SUMMARY_VARIABLE}",
        summary_to_stderr=getattr(args, "progress", None) == "jsonl",
    )


def cmd_merge_reports(args: argparse.Namespace, env: Environment) -> int:
    from pipeline.merge import load_report, merge_reports, write_report_json
    from pipeline.report import EXIT_CODES

    check_writable(args.out, "-o")
    _ci_reports(args, env).check()
    merged = merge_reports([load_report(p) for p in args.reports])
    write_report_json(args.out, merged)
    _ci_reports(args, env).write(merged)
    say(f"{merged['status']}: merged {len(args.reports)} reports into {args.out}")
    return EXIT_CODES.get(str(merged["status"]), 1)


def _finish_run(
    report: RunReport, out_dir: Path, target: Target, *, report_written: bool = True
) -> int:
    if report.error is not None:
        error = FatalApiError(
            report.error.code, report.error.message, logid=report.error.logid,
            host=target.host_id,
        )
        say(f"tts-pipeline: stopped: {fatal_advice(error)}", Redactor(target.token))
    for chapter in report.chapters:
        if chapter.error is not None:
            e = chapter.error
            logid = f", logid {e.logid}" if e.logid else ""
            say(
                f"tts-pipeline: chapter {chapter.id} failed at line {e.line}"
                f"{f' ({e.file_line})' if e.file_line else ''}: code {e.code}: "
                f"{e.message}{logid}",
                Redactor(target.token),
            )
    where = f", report in {out_dir / 'report.json'}" if report_written else ""
    cli_finish.say_totals(report.totals)
    say(f"{report.status}: audio in {out_dir}/{where}")
    return report.exit_code


def _say_formats(args: argparse.Namespace) -> tuple[str, str | None]:
    suffix = args.out.suffix.lower()
    if suffix not in SAY_FORMATS:
        raise UsageError(
            f"-o {args.out}: unknown extension; use one of {', '.join(SAY_FORMATS)}"
        )
    response_format, output_format = SAY_FORMATS[suffix]
    if args.format is not None:
        response_format = args.format
        if output_format is None and suffix != ".ogg":
            output_format = _ext_output_format(suffix, response_format)
    return response_format, output_format


def _ext_output_format(suffix: str, response_format: str) -> str | None:
    if f".{FILE_EXTENSIONS[response_format]}" == suffix:
        return None
    if suffix == ".pcm":
        raise UsageError("-o FILE.pcm needs --format pcm")
    return suffix.lstrip(".")


def _say_params(args: argparse.Namespace, target: Target, response_format: str) -> SpeechParams:
    voice = args.voice or (LOCAL_DEFAULT_VOICES[args.engine] if target.local else None)
    if not voice:
        raise UsageError("say needs --voice ID (the voice list: tts-pipeline voices)")
    params = SpeechParams(
        voice_id=voice,
        emotion=args.emotion,
        emotion_scale=args.emotion_scale,
        response_format=response_format,
        speed=args.speed,
        sample_rate=args.sample_rate,
        loudness_rate=args.loudness_rate,
        context_texts=args.context_texts,
    )
    if problems := params.problems():
        raise UsageError("; ".join(problems))
    return params


def cmd_say(args: argparse.Namespace, env: Environment) -> int:
    from pipeline import api
    from pipeline.manifest import split_paragraphs

    target = _target(args, env, None)
    response_format, output_format = _say_formats(args)
    params = _say_params(args, target, response_format)
    if not split_paragraphs(args.text):
        raise UsageError("TEXT is empty")
    if redactor_for(env.token).found_in(args.text):
        raise UsageError(f"TEXT holds the API token (${TOKEN_VARIABLE}); nothing was sent")
    check_writable(args.out, "-o")
    result = api.say(
        args.text, args.out, params, target, output_format=output_format,
        max_chunk_bytes=args.max_chunk_bytes, qps=args.qps, retries=args.retries,
        read_timeout=args.timeout, handle_signals=True,
    )  # fmt: skip
    if result.path is None:
        return _finish_run(result.report, args.out.parent, target, report_written=False)
    say(f"{result.path}: {result.report.totals.audio_seconds:.1f} s of audio", file=sys.stdout)
    return 0


def cmd_voices(args: argparse.Namespace, env: Environment) -> int:
    from pipeline import api

    target = _target(args, env, None)
    voices = api.voices(target, args.timeout)
    if args.json:
        print(json_for_terminal([asdict(v) for v in voices]))
        return 0
    clean = Redactor(target.token).clean
    for v in voices:
        emotions = clean(",".join(v.emotions)) or "-"
        print(f"{clean(v.voice_id)}\t{clean(v.language_code or '-')}\t{clean(v.name)}\t"
              f"emotions: {emotions}")
    return 0


Command = Callable[[argparse.Namespace, Environment], int]
# "module:function" for a command whose module a run does not need (imported when it runs)
COMMANDS: dict[str, Command | str] = {
    "run": cmd_run,
    "plan": cmd_plan,
    "validate": cmd_validate,
    "say": cmd_say,
    "voices": cmd_voices,
    "merge-reports": cmd_merge_reports,
    "serve-local": "pipeline.cli_local:cmd_serve_local",
    "import": cmd_import,
    "check": "pipeline.cli_local:cmd_check",
    "book": cli_finish.cmd_book,
}


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    env = Environment.read(os.environ if environ is None else environ)
    redactor = redactor_for(env.token)
    args = build_parser(redactor.clean).parse_args(argv)
    try:
        command = COMMANDS[args.command]
        if isinstance(command, str):
            module, name = command.split(":")
            command = getattr(importlib.import_module(module), name)
        return command(args, env)
    except BrokenPipeError:
        if args.command in ("run", "say"):  # work was cut short: say so (stderr still works)
            say("tts-pipeline: stopped: stdout was closed by its reader; finished chunks are "
                "kept in the cache, the same command resumes")
        return silence_stdout()
    except ManifestError as e:
        for problem in e.problems:
            say(str(problem), redactor)
        say(f"tts-pipeline: {len(e.problems)} problem(s); nothing was sent")
        return 2
    except (UsageError, ConfigError) as e:
        say(f"tts-pipeline: error: {e}", redactor)
        return 2
    except FatalApiError as e:
        say(f"tts-pipeline: stopped: {fatal_advice(e)}", redactor)
        return 3
    except PipelineError as e:
        say(f"tts-pipeline: error: {e}", redactor)
        return 1
    except KeyboardInterrupt:
        print("tts-pipeline: interrupted", file=sys.stderr)
        return 130


__all__ = ["build_parser", "main"]
