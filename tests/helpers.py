"""Shared helpers for the runner and CLI tests (no tests here): jobs, runs, reports, spans.

Jobs use the local server's tone engine (``local-tone-1``) and wav at 16 kHz with no pauses,
so that a chapter file is the chunks' tones end to end and can be checked sample by sample.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from support import busiest_second as busiest_second

from pipeline.coze.client import ClientConfig, SpeechClient
from pipeline.limits import RateLimit
from pipeline.localserver import LocalServer, body_key, tone_duration, tone_frequency
from pipeline.manifest import load_job
from pipeline.planning import Plan, plan_job
from pipeline.progress import Progress
from pipeline.report import RunReport
from pipeline.runner import RetryPolicy, RunConfig, Runner

REPO = Path(__file__).resolve().parents[1]
VOICE = "local-tone-1"
RATE = 16000
TOKEN = "test-token"
# Fast retries: the tests are about what is retried, not about how long the waits are.
FAST_RETRY = RetryPolicy(retries=4, initial_s=0.01, max_s=0.05)


def write_job(
    directory: Path,
    chapters: Mapping[str, Sequence[str]],
    *,
    fmt: str = "wav",
    name: str = "job.yaml",
    defaults: Mapping[str, Any] | None = None,
    run: Mapping[str, Any] | None = None,
    chapter_fields: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """A YAML job: one line per text, chapters in the given order."""
    body: dict[str, Any] = {
        "defaults": {
            "voice_id": VOICE,
            "response_format": fmt,
            "sample_rate": RATE,
            "pause_ms": 0,
            **(defaults or {}),
        },
        "chapters": [
            {
                "id": cid,
                "lines": [{"text": t} for t in texts],
                **(chapter_fields or {}).get(cid, {}),
            }
            for cid, texts in chapters.items()
        ],
    }
    if run:
        body["run"] = dict(run)
    path = directory / name
    path.write_text(yaml.safe_dump(body, allow_unicode=True), encoding="utf-8")
    return path


def texts(count: int, prefix: str = "line") -> list[str]:
    """``count`` short distinct sentences."""
    return [f"{prefix} {i}: the quick brown fox jumps." for i in range(count)]


def make_plan(path: Path, max_chunk_bytes: int = 1024) -> Plan:
    return plan_job(load_job(path), max_chunk_bytes)


def run_config(out: Path, base_url: str, **overrides: Any) -> RunConfig:
    config = RunConfig(
        out_dir=out,
        cache_dir=out / ".cache",
        host_id=base_url,
        rate=RateLimit(qps=200.0),
        concurrency=4,
        retry=FAST_RETRY,
    )
    return replace(config, **overrides)


async def run_plan(
    plan: Plan,
    server: LocalServer,
    out: Path,
    *,
    read_timeout: float = 10.0,
    progress: Progress | None = None,
    on_runner: Callable[[Runner], None] | None = None,
    **overrides: Any,
) -> RunReport:
    """Run ``plan`` against ``server`` with a real ``SpeechClient``."""
    client_config = ClientConfig(base_url=server.base_url, token=TOKEN, read_timeout=read_timeout)
    async with SpeechClient(client_config) as client:
        runner = Runner(plan, run_config(out, server.base_url, **overrides), client, progress)
        if on_runner is not None:
            on_runner(runner)
        return await runner.run()


def read_report(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return data


def chunk_keys(plan: Plan) -> list[str]:
    """The server's ``by_input`` key of every chunk of ``plan``, in manifest order."""
    return [body_key(c.request().body()) for c in plan.chunks()]


def spans(chunk_texts: Sequence[str], rate: int = RATE) -> list[tuple[int, int, int]]:
    """``(start, end, frequency)`` in samples of each chunk in a tone chapter with no pauses."""
    out, start = [], 0
    for text in chunk_texts:
        length = round(tone_duration(text) * rate)
        out.append((start, start + length, tone_frequency(text)))
        start += length
    return out


def distinct_neighbours(count: int, prefix: str = "part") -> list[str]:
    """``count`` texts whose tone frequencies differ from their neighbours' by 10 % or more."""
    chosen: list[str] = []
    i = 0
    while len(chosen) < count:
        text = f"{prefix} {i}, spoken."
        i += 1
        if not chosen or abs(tone_frequency(text) / tone_frequency(chosen[-1]) - 1) >= 0.1:
            chosen.append(text)
    return chosen


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: no token or base URL unless given."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("COZE_API_TOKEN", "COZE_API_BASE", "GITHUB_STEP_SUMMARY")
    }
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def cli_command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "pipeline", *map(str, args)]


def run_cli(
    *args: str | Path, env: Mapping[str, str] | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_command(*args),
        env=dict(env) if env is not None else cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        check=False,
    )


def start_cli(*args: str | Path, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cli_command(*args),
        env=dict(env) if env is not None else cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def interrupt_when(
    process: subprocess.Popen[str], ready: Callable[[], None], sig: int, timeout: float
) -> float:
    """Once ``ready()`` returns, send ``sig`` to a running CLI: the seconds it took to exit.
    The process never outlives this (killed if ``ready`` fails or it outlives ``timeout``)."""
    try:
        ready()
        sent = time.monotonic()
        process.send_signal(sig)
        process.wait(timeout=timeout)
        return time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.01)
