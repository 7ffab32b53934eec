"""What the command line and Python users call: ``plan``, ``run_job``, ``say``, ``voices``.

Nothing here reads argv or the environment, and nothing prints: every choice arrives as an
argument (see ``settings`` for the defaults and the merge), every result is returned.
Heavy modules (the runner, the client, the local server, PyAV) are imported when first used.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import ConfigError
from pipeline.fileio import make_dirs, publish, storage_error
from pipeline.manifest import (
    NO_OVERRIDES,
    Chapter,
    Job,
    Line,
    OutputSettings,
    Overrides,
    load_job,
)
from pipeline.manifest.text import split_paragraphs
from pipeline.settings import (
    DEFAULT_MAX_CHUNK_BYTES,
    DEFAULT_PAUSE_MS,
    DEFAULT_QPS,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    Target,
)
from pipeline.speech import SpeechParams

if TYPE_CHECKING:
    from pipeline.books.importing import Imported
    from pipeline.coze.client import SpeechClient, Voice
    from pipeline.planning import ChapterPlan, Plan
    from pipeline.progress import Progress
    from pipeline.report import RunReport
    from pipeline.runner import CacheLookup, RunConfig
    from pipeline.sharding import Shard


def load(
    source: Path,
    overrides: Overrides = NO_OVERRIDES,
    shard: Shard | None = None,
    voice_languages: Mapping[str, str] | None = None,
    *,
    holds_token: Callable[[str], bool] | None = None,
) -> Job:
    """The job in ``source``, only the chapters of ``shard`` when given.

    ``voice_languages`` (voice_id -> language_code, e.g. from ``voices``) gives a line that
    sets no ``language`` the language of its voice (for ``normalize`` and the lexicon).
    ``holds_token(text)`` (``Redactor.found_in``): a line or title for which it is true is a
    manifest problem, so that a secret read by mistake is never sent or written.
    """
    job = load_job(source, overrides, voice_languages, holds_token=holds_token)
    if shard is None:
        return job
    from pipeline.sharding import select_shard

    chosen = select_shard([c.id for c in job.chapters], shard)
    return replace(job, chapters=tuple(job.chapters[i] for i in chosen))


def plan(job: Job, max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES) -> Plan:
    """The chunks a run of ``job`` would send; ``ConfigError`` for an impossible chunk size."""
    from pipeline.planning import plan_job

    return plan_job(job, max_chunk_bytes)


def lookup(found_plan: Plan, cache_dir: Path, target: Target) -> CacheLookup:
    """Which chunks of ``found_plan`` are already in the cache for ``target``'s host."""
    from pipeline.cache import ChunkCache
    from pipeline.runner import lookup_cache

    return lookup_cache(found_plan, ChunkCache(cache_dir), target.host_id)


@contextlib.asynccontextmanager
async def open_client(target: Target, read_timeout: float) -> AsyncIterator[SpeechClient]:
    """A client for ``target``; for the local backend, the server runs for as long as it."""
    from pipeline.coze.client import ClientConfig, SpeechClient

    async with contextlib.AsyncExitStack() as stack:
        base_url = target.base_url
        if target.local:
            from pipeline.localserver import ServerConfig, running_server

            config = ServerConfig(engine=target.engine)
            server = await stack.enter_async_context(running_server(config))
            base_url = server.base_url
        client_config = ClientConfig(
            base_url=base_url, token=target.token, read_timeout=read_timeout
        )
        yield await stack.enter_async_context(SpeechClient(client_config))


def run_job(
    job_plan: Plan,
    config: RunConfig,
    target: Target,
    *,
    read_timeout: float = DEFAULT_TIMEOUT,
    progress: Progress | None = None,
    found: CacheLookup | None = None,
    before_first_request: Callable[[SpeechClient], Awaitable[None]] | None = None,
) -> RunReport:
    """Synthesize every chunk of ``job_plan`` and assemble its chapters (blocks until done).

    ``before_first_request(client)`` is awaited with the run's client before the runner starts
    (a voice-list check over the same connection): what it raises ends the call, nothing sent.
    """
    import anyio

    from pipeline.runner import Runner

    async def go() -> RunReport:
        async with open_client(target, read_timeout) as client:
            if before_first_request is not None:
                await before_first_request(client)
            return await Runner(job_plan, config, client, progress, lookup=found).run()

    return anyio.run(go)


@dataclass(frozen=True)
class SayResult:
    """``say``'s outcome: the report, and the file when the run succeeded."""

    report: RunReport
    path: Path | None


def say_job(text: str, params: SpeechParams, output_format: str | None) -> Job:
    """One chapter ``say`` with a line per paragraph of ``text``."""
    paragraphs = split_paragraphs(text)
    if not paragraphs:
        raise ConfigError("the text is empty")
    lines = tuple(
        Line(id=str(i), text=p, params=params, pause_ms=DEFAULT_PAUSE_MS, file="<say>", lineno=None)
        for i, p in enumerate(paragraphs, 1)
    )
    chapter = Chapter(id="say", title=None, lines=lines, file="<say>", lineno=None)
    output = OutputSettings(None, output_format, None, (), None)
    return Job(source=Path("say"), chapters=(chapter,), output=output)


def say(
    text: str,
    out: Path,
    params: SpeechParams,
    target: Target,
    *,
    output_format: str | None = None,
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
    qps: float = DEFAULT_QPS,
    retries: int = DEFAULT_RETRIES,
    read_timeout: float = DEFAULT_TIMEOUT,
    handle_signals: bool = False,
) -> SayResult:
    """``text`` of any length to the one audio file ``out``, written whole or not at all."""
    from pipeline.limits import RateLimit
    from pipeline.runner import OutputOptions, RetryPolicy, RunConfig

    if problems := params.problems():
        raise ConfigError("; ".join(problems))
    job_plan = plan(say_job(text, params, output_format), max_chunk_bytes)
    make_dirs(out.parent)
    try:
        scratch = tempfile.TemporaryDirectory(prefix=".say-", dir=out.parent)
    except OSError as e:
        raise storage_error(e, "write in", out.parent) from None
    with scratch as tmp:
        config = RunConfig(
            out_dir=Path(tmp),
            cache_dir=Path(tmp) / ".cache",
            host_id=target.host_id,
            rate=RateLimit(qps=qps),
            retry=RetryPolicy(retries=retries),
            output=OutputOptions(format=output_format),
            handle_signals=handle_signals,
            write_report=False,
        )
        report = run_job(job_plan, config, target, read_timeout=read_timeout)
        if report.status != "ok":
            return SayResult(report, None)
        produced = report.chapters[0].output
        assert produced is not None
        publish(Path(tmp) / produced, out)
    return SayResult(report, out)


def voices(target: Target, read_timeout: float = DEFAULT_TIMEOUT) -> list[Voice]:
    """The voice list of ``target``'s host."""
    import anyio

    async def go() -> list[Voice]:
        async with open_client(target, read_timeout) as client:
            return await client.list_voices()

    return anyio.run(go)


def plan_json(found_plan: Plan, qps: float, found: CacheLookup) -> dict[str, Any]:
    """The plan as ``plan --json`` prints it: totals and every chunk's text."""
    requests = found.requests  # distinct: chunks asking the same thing are one request
    return {
        "source": str(found_plan.job.source),
        "qps": qps,
        "max_chunk_bytes": found_plan.max_chunk_bytes,
        "totals": {
            "chapters": len(found_plan.chapters),
            "lines": found_plan.lines,
            "chunks": found_plan.chunk_count,
            "characters": found_plan.characters,
            "bytes": found_plan.utf8_bytes,
            "requests": requests,
            "cache_hits": found.hits,
            "repeats": found.repeats,
            "billable_characters": found.billable_characters,
            "min_seconds": round(requests / qps, 3),
        },
        "chapters": [_chapter_json(cp) for cp in found_plan.chapters],
        "skipped": [
            {"file": s.file, "line": s.line, "reason": s.reason, "text": s.text}
            for s in found_plan.job.skipped
        ],
        "notes": list(found_plan.job.notes),
    }


def _chapter_json(cp: ChapterPlan) -> dict[str, Any]:
    return {
        "id": cp.chapter.id,
        "title": cp.chapter.title,
        "lines": len(cp.chapter.lines),
        "response_format": cp.response_format,
        "sample_rate": cp.sample_rate,
        "chunks": [
            {
                "line": c.line_id,
                "index": c.index,
                "text": c.text,
                "characters": c.characters,
                "bytes": c.utf8_bytes,
                "voice_id": c.params.voice_id,
            }
            for c in cp.chunks
        ],
    }


def import_book(source: Path, out: Path, **options: Any) -> Imported:
    """``source`` (.epub, .txt) written to ``out`` as an editable job; see books.importing."""
    from pipeline.books.importing import import_book as write

    return write(source, out, **options)


__all__: Sequence[str] = [
    "SayResult", "import_book", "load", "plan", "plan_json", "run_job", "say", "voices",
]
