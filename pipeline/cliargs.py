"""The command line's grammar: every command, option and its help text (no behaviour)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from pipeline.cli_books import add_import_parser
from pipeline.errors import ConfigError
from pipeline.formats import FORMATS
from pipeline.redact import escape_controls
from pipeline.settings import (
    BACKENDS,
    CONCURRENCY_RANGE,
    DEFAULT_BASE_URL,
    DEFAULT_ENGINE,
    DEFAULT_QPS,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    LOCAL_ENGINES,
    QPS_RANGE,
    RETRIES_RANGE,
    TIMEOUT_RANGE,
    range_problem,
)
from pipeline.sharding import SHARD_HELP, Shard, parse_shard
from pipeline.speech import MAX_INPUT_BYTES, SAMPLE_RATES

TOKEN_VARIABLE = "COZE_API_TOKEN"
BASE_VARIABLE = "COZE_API_BASE"
SUMMARY_VARIABLE = "GITHUB_STEP_SUMMARY"
# progress.PROGRESS_MODES, spelled here so that `--help` needs no tqdm (a test keeps them equal).
PROGRESS_MODES = ("auto", "bar", "plain", "jsonl", "none")


def _number(text: str, whole: bool) -> float:
    try:
        return int(text) if whole else float(text)
    except ValueError:
        kind = "a whole number" if whole else "a number"
        raise argparse.ArgumentTypeError(
            f"must be {kind}, not {escape_controls(text[:40])!r}"
        ) from None


def ranged(name: str, *, whole: bool = False) -> Callable[[str], Any]:
    """An argparse type: a number within ``settings.RANGES[name]``, else a one-line error."""

    def parse(text: str) -> float:
        value = _number(text, whole)
        if problem := range_problem(name, value):
            raise argparse.ArgumentTypeError(problem)
        return value

    parse.__name__ = name
    return parse


def _shard(text: str) -> Shard:
    try:
        return parse_shard(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def _fault_kinds(text: str) -> tuple[str, ...]:
    from pipeline.localserver.config import ALL_FAULT_KINDS

    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in ALL_FAULT_KINDS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(
            f"unknown fault kind(s) {', '.join(unknown) or '(none given)'}; known: "
            f"{', '.join(ALL_FAULT_KINDS)}"
        )
    return kinds


def _add_backend_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        help="coze (the API, billed to the token) or local (the embedded server); beats the "
        "job's run.backend (default: run.backend, else coze; --base-url means coze)",
    )
    p.add_argument(
        "--local",
        action="store_true",
        help="synthesize with the embedded Coze-compatible local server (no token, no network); "
        "the same as --backend local",
    )
    p.add_argument(
        "--engine",
        choices=LOCAL_ENGINES,
        default=DEFAULT_ENGINE,
        help="the local server's engine with --local: espeak (real speech) or tone (test signal)",
    )
    p.add_argument(
        "--base-url",
        help=f"API host (default: ${BASE_VARIABLE}, else the job's run.base_url, "
        f"else {DEFAULT_BASE_URL})",
    )
    p.add_argument(
        "--timeout",
        type=ranged("timeout"),
        default=DEFAULT_TIMEOUT,
        help="seconds without a byte of the answer before a request counts as failed "
        f"({DEFAULT_TIMEOUT:g}; {TIMEOUT_RANGE.describe()})",
    )


def _add_job_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FORMATS, help="response_format for every line")
    p.add_argument(
        "--sample-rate", type=int, choices=SAMPLE_RATES, help="sample_rate for every line"
    )
    p.add_argument("--voice", help="voice_id for every line that sets none")
    p.add_argument(
        "--qps",
        type=ranged("qps"),
        help="at most X requests started per second (the job's run.qps, else 5; "
        f"{QPS_RANGE.describe()}); the configured rate is a ceiling: the run slows down by "
        "itself on rate-limit answers",
    )
    p.add_argument(
        "--max-chunk-bytes",
        type=ranged("max_chunk_bytes", whole=True),
        help=f"chunk size cap in UTF-8 bytes, 1 to {MAX_INPUT_BYTES} (1024)",
    )


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--concurrency", type=ranged("concurrency", whole=True),
                   help=f"at most N requests in flight (4; {CONCURRENCY_RANGE.describe()})")
    p.add_argument(
        "--retries", type=ranged("retries", whole=True),
        help=f"attempts after the first, per chunk (6; {RETRIES_RANGE.describe()})",
    )
    p.add_argument("--burst", type=ranged("burst", whole=True),
                   help="requests that may start back to back before the --qps pacing (1)")
    p.add_argument("--progress", choices=PROGRESS_MODES, default="auto")
    _add_cache_options(p)
    p.add_argument("--junit", type=Path, metavar="FILE",
                   help="also write a JUnit XML report, one test case per chapter")
    p.add_argument("--summary", action="store_true",
                   help=f"print a Markdown summary of the run (also appended to "
                   f"${SUMMARY_VARIABLE} when that is set)")
    p.add_argument("--shard", type=_shard, metavar="K/N", help=SHARD_HELP)
    p.add_argument(
        "--quality-strict", action="store_true",
        help="a chunk the quality gate flags (no answer passed it) fails its chapter; the same "
        "as the job's quality: {strict: true}",
    )
    p.add_argument(
        "--budget-characters", type=ranged("budget_characters", whole=True), metavar="N",
        help="refuse to start (exit 2) when the characters to bill after cache hits exceed N, "
        "and never send a request that would cross N during the run",
    )


def _add_cache_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--out", type=Path, help="output directory (job's output.dir, "
                   "else out/<SOURCE stem>)")
    p.add_argument("--cache-dir", type=Path, help="chunk cache (default <out>/.cache)")


class _Version(argparse.Action):
    """``--version``: the installed version, looked up only when asked (importlib.metadata
    costs more than the rest of ``--help``)."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from pipeline import __version__

        parser.exit(message=f"{parser.prog} {__version__}\n")


class _Parser(argparse.ArgumentParser):
    """argparse with its error line made safe: a value quoted back may hold control
    characters, or the token itself when it was pasted into an option by mistake."""

    def clean(self, text: str) -> str:
        return escape_controls(text)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {self.clean(message)}\n")


def build_parser(clean: Callable[[str], str] | None = None) -> argparse.ArgumentParser:
    """The parser; ``clean`` (``Redactor.clean``) makes its error messages safe to print.
    Subcommands' parsers are of the same class, so they clean the same way."""
    parser_class: type[_Parser] = _Parser
    if clean is not None:
        parser_class = type("_Parser", (_Parser,), {"clean": lambda _, text: clean(text)})
    parser = parser_class(
        prog="tts-pipeline",
        description="Batch speech synthesis with the Coze speech API. The token is read from "
        f"${TOKEN_VARIABLE}, never from the command line.",
    )
    parser.add_argument("--version", action=_Version, nargs=0, help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="synthesize every chapter of SOURCE")
    run.add_argument("source", type=Path, metavar="SOURCE")
    _add_job_options(run)
    _add_run_options(run)
    _add_backend_options(run)

    plan = sub.add_parser("plan", help="what a run would send, without sending anything")
    plan.add_argument("source", type=Path, metavar="SOURCE")
    plan.add_argument("--json", action="store_true", help="the plan with every chunk's text")
    _add_job_options(plan)
    _add_cache_options(plan)
    plan.add_argument("--shard", type=_shard, metavar="K/N", help="plan only shard K of N")
    _add_backend_options(plan)

    validate = sub.add_parser("validate", help="check SOURCE and every file it names")
    validate.add_argument("source", type=Path, metavar="SOURCE")
    validate.add_argument("--voice", help="voice_id for every line that sets none")
    validate.add_argument(
        "--online",
        action="store_true",
        help="also check every voice_id and emotion against the host's voice list (free)",
    )
    _add_backend_options(validate)

    _add_say(sub)
    _add_other_commands(sub)
    add_import_parser(sub)
    return parser


def _add_say(sub: Any) -> None:
    say = sub.add_parser("say", help="one text of any length to one audio file")
    say.add_argument("text", metavar="TEXT")
    say.add_argument("-o", "--out", type=Path, required=True, metavar="FILE",
                     help="the audio file (.mp3 .wav .pcm .opus .ogg .flac .m4a)")
    say.add_argument("--voice", help="voice_id (default with --local: local-zh-female, or "
                     "local-tone-1 with --engine tone)")
    say.add_argument("--format", choices=FORMATS, help="response_format (default: by FILE)")
    say.add_argument("--sample-rate", type=int, choices=SAMPLE_RATES)
    say.add_argument("--speed", type=float)
    say.add_argument("--emotion")
    say.add_argument("--emotion-scale", type=float)
    say.add_argument("--loudness-rate", type=int)
    say.add_argument("--context-texts")
    say.add_argument("--max-chunk-bytes", type=ranged("max_chunk_bytes", whole=True),
                     default=MAX_INPUT_BYTES)
    say.add_argument("--retries", type=ranged("retries", whole=True), default=DEFAULT_RETRIES)
    say.add_argument("--qps", type=ranged("qps"), default=DEFAULT_QPS)
    _add_backend_options(say)


def _add_other_commands(sub: Any) -> None:
    voices = sub.add_parser("voices", help="the voice list of the configured host")
    voices.add_argument("--json", action="store_true")
    _add_backend_options(voices)

    book = sub.add_parser("book", help="the job's output.book from the chapter files of shards")
    book.add_argument("source", type=Path, metavar="SOURCE")
    book.add_argument("--format", choices=FORMATS, help="response_format, as the runs had it")
    book.add_argument("--voice", help="voice_id, as the runs had it")
    _add_cache_options(book)

    merge = sub.add_parser("merge-reports", help="join the report.json files of shards")
    merge.add_argument("reports", type=Path, nargs="+", metavar="REPORT")
    merge.add_argument("-o", "--out", type=Path, required=True, metavar="FILE",
                       help="the merged report.json")
    merge.add_argument("--junit", type=Path, metavar="FILE", help="also write JUnit XML")
    merge.add_argument("--summary", action="store_true", help="print a Markdown summary")

    serve = sub.add_parser("serve-local", help="the Coze-compatible local server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=ranged("port", whole=True), default=8080)
    serve.add_argument("--engine", choices=LOCAL_ENGINES, default="espeak")
    serve.add_argument("--qps", type=ranged("qps"), help="requests/s before HTTP 429")
    serve.add_argument("--burst", type=ranged("burst", whole=True), default=1)
    serve.add_argument("--max-in-flight", type=ranged("max_in_flight", whole=True))
    serve.add_argument("--latency-ms", type=ranged("latency_ms"), default=0.0)
    serve.add_argument("--latency-per-byte-ms", type=ranged("latency_per_byte_ms"),
                       default=0.0)
    serve.add_argument("--jitter", type=ranged("jitter"), default=0.0,
                       help="latency jitter, 0.3 = +-30%%")
    serve.add_argument("--fault-rate", type=ranged("fault_rate"), default=0.0)
    serve.add_argument(
        "--fault-kinds", type=_fault_kinds, metavar="K1,K2",
        help="the kinds --fault-rate draws from, comma-separated: transport and API faults "
        "(the default: all of them) and the quality faults silent, truncated, padded, clipped, "
        "quiet",
    )
    serve.add_argument("--seed", type=ranged("seed", whole=True), default=0)

    check = sub.add_parser(
        "check", help="re-run the quality gate's measures over a finished output folder (offline)"
    )
    check.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    check.add_argument("--json", action="store_true", help="the findings as JSON")
    check.add_argument(
        "--pcm-rate", type=int, choices=SAMPLE_RATES, default=24000,
        help="the sample rate of .pcm files, which do not say it (24000)",
    )
