"""What every benchmark shares: the server process, the jobs, running a client, the tables.

Clients run as child processes reaped with ``os.wait4``, which hands back that one child's
own resource usage: CPU seconds and peak RSS of the client alone, never the server's (a
sibling process) nor the benchmark driver's.
"""

from __future__ import annotations

import json
import os
import platform
import random
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from pipeline.chunking import split_text
from pipeline.manifest import split_paragraphs

ROOT = Path(__file__).resolve().parents[1]
# The texts: the project's own (tests/data/texts, a few KB per language, repeated where a
# benchmark needs more), or the external public-domain corpus when $TTS_CORPUS_DIR names it.
TEXTS = ROOT / "tests" / "data" / "texts"
CORPUS_VARIABLE = "TTS_CORPUS_DIR"
LANGUAGE_FILES = {"zh": ("sanguo", "xiyouji"), "en": ("holmes", "alice"), "ja": ("wagahai",)}
VOICE = "local-tone-1"
TOKEN = "bench"  # the local server accepts any bearer token; the pipeline insists on one


# ---------------------------------------------------------------- machine


def machine() -> dict[str, Any]:
    """nproc, CPU model, memory, Python, OS, date: the header of every result."""
    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="utf-8") as f:
        kib = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(kib / 2**20, 1),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
    }


# ---------------------------------------------------------------- the server


@dataclass(frozen=True)
class ServerKnobs:
    """The local server's settings for one set of runs (``bench.server`` flags)."""

    qps: float | None = None
    latency_ms: float = 0.0
    latency_per_byte_ms: float = 0.0
    jitter: float = 0.0
    burst: int = 1
    switch_interval_ms: float | None = None  # None: bench.server's default

    def argv(self) -> list[str]:
        args = [
            "--burst", str(self.burst),
            "--latency-ms", str(self.latency_ms),
            "--latency-per-byte-ms", str(self.latency_per_byte_ms),
            "--jitter", str(self.jitter),
        ]  # fmt: skip
        if self.switch_interval_ms is not None:
            args += ["--switch-interval-ms", str(self.switch_interval_ms)]
        return args + (["--qps", str(self.qps)] if self.qps else [])


# The latency model: 300 ms + 0.5 ms per byte of input, +-30 % jitter.
LATENCY_MODEL = ServerKnobs(latency_ms=300.0, latency_per_byte_ms=0.5, jitter=0.3)


@dataclass
class BenchServer:
    """A running ``bench.server`` process: base URL, stats, timeline."""

    process: subprocess.Popen[str]
    base_url: str
    timeline_url: str

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = _get_json(self.base_url + "/_local/stats")
        return stats

    def timeline(self) -> list[list[float]]:
        samples: list[list[float]] = _get_json(self.timeline_url + "/timeline")["samples"]
        return samples

    def loop_lag(self) -> dict[str, float] | None:
        """The server loop's lag since the last reset, in ms (``bench.server``)."""
        lag: dict[str, float] | None = _get_json(self.timeline_url + "/timeline")["lag_ms"]
        return lag

    def reset(self) -> None:
        _post(self.base_url + "/_local/reset")
        _post(self.timeline_url + "/timeline/reset")


@contextmanager
def bench_server(knobs: ServerKnobs) -> Iterator[BenchServer]:
    command = [sys.executable, "-m", "bench.server", *knobs.argv()]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline())
        yield BenchServer(process, ready["base_url"], ready["timeline_url"])
    finally:
        process.terminate()
        process.wait(timeout=30)


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def _post(url: str) -> None:
    request = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


# ---------------------------------------------------------------- texts and jobs


def text_files(language: str) -> list[Path]:
    """The texts of ``language``: the external corpus's when ``$TTS_CORPUS_DIR`` names a
    directory that has some, else the project's own ``tests/data/texts/<language>_*.txt``."""
    named = os.environ.get(CORPUS_VARIABLE)
    if named and Path(named).is_dir():
        found = [
            path
            for prefix in LANGUAGE_FILES[language]
            for path in sorted(Path(named).glob(f"{prefix}_*.txt"))
        ]
        if found:
            return found
    return sorted(TEXTS.glob(f"{language}_*.txt"))


def corpus_paragraphs(language: str) -> list[str]:
    """The texts of ``language`` cut into lines by the manifest's paragraph rule."""
    return [
        p
        for path in text_files(language)
        for p in split_paragraphs(path.read_text(encoding="utf-8"))
    ]


def line_texts(count: int, *, low: int = 100, high: int = 300, seed: int = 7) -> list[str]:
    """``count`` distinct lines of ``low`` to ``high`` UTF-8 bytes, from the zh/en/ja corpus.

    Corpus paragraphs are cut at sentence ends with the pipeline's chunker (cap ``high``);
    pieces under ``low`` are dropped; the pool is shuffled once and reused with a counter
    appended when ``count`` is larger, so no two lines are the same request (a repeated body
    would be a cache hit, not a request).
    """
    pool = [
        piece
        for language in LANGUAGE_FILES
        for paragraph in corpus_paragraphs(language)
        for piece in split_text(paragraph, high - 8)
        if len(piece.encode()) >= low
    ]
    random.Random(seed).shuffle(pool)
    return [
        pool[i % len(pool)] + (f" {i // len(pool)}" if i >= len(pool) else "")
        for i in range(count)
    ]


def write_job(
    directory: Path,
    chapters: Sequence[Sequence[str]],
    *,
    response_format: str = "wav",
    sample_rate: int = 16000,
) -> Path:
    """A job file with one chapter per list of lines, the tone voice, no pauses."""
    directory.mkdir(parents=True, exist_ok=True)
    job = {
        "defaults": {
            "voice_id": VOICE,
            "response_format": response_format,
            "sample_rate": sample_rate,
            "pause_ms": 0,
        },
        "chapters": [
            {"id": f"ch{i + 1:03d}", "lines": [{"text": t} for t in lines]}
            for i, lines in enumerate(chapters)
        ],
    }
    path = directory / "job.yaml"
    path.write_text(yaml.safe_dump(job, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def split_evenly(items: Sequence[str], parts: int) -> list[list[str]]:
    size = -(-len(items) // parts)
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


# ---------------------------------------------------------------- running a client


@dataclass
class ChildRun:
    """One client process: exit status, wall time, its own CPU and peak RSS, its stdout."""

    returncode: int
    wall_s: float
    cpu_s: float
    max_rss_mb: float
    stdout: str
    stderr: str = field(repr=False, default="")


def run_child(argv: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None) -> ChildRun:
    """Run ``argv`` to the end; stdout and stderr go through files (no pipe can fill up)."""
    out_path = cwd / f".child-{os.getpid()}-{time.monotonic_ns()}"
    with open(f"{out_path}.out", "w+b") as out, open(f"{out_path}.err", "w+b") as err:
        started = time.monotonic()
        process = subprocess.Popen(
            list(argv), cwd=ROOT, stdout=out, stderr=err, env={**os.environ, **(env or {})}
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    os.unlink(f"{out_path}.out")
    os.unlink(f"{out_path}.err")
    return ChildRun(
        returncode=process.returncode,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        max_rss_mb=usage.ru_maxrss / 1024,  # KiB on Linux
        stdout=stdout,
        stderr=stderr,
    )


@dataclass(frozen=True)
class PipelineSettings:
    qps: float
    concurrency: int
    retries: int = 6

    def argv(self) -> list[str]:
        return [
            "--qps", f"{self.qps:g}",
            "--concurrency", str(self.concurrency),
            "--retries", str(self.retries),
        ]  # fmt: skip


def run_pipeline(
    job: Path, base_url: str, settings: PipelineSettings, out_dir: Path
) -> tuple[ChildRun, dict[str, Any]]:
    """``python -m pipeline run JOB`` as a user types it; returns the run and its report.json."""
    argv = [
        sys.executable, "-m", "pipeline", "run", str(job),
        "--base-url", base_url, "-o", str(out_dir), "--progress", "jsonl",
        *settings.argv(),
    ]  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    run = run_child(argv, cwd=out_dir, env={"COZE_API_TOKEN": TOKEN})
    report_path = out_dir / "report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    if run.returncode != 0:
        sys.stderr.write(f"pipeline exited {run.returncode}:\n{run.stderr[-2000:]}\n")
    return run, report


# ---------------------------------------------------------------- figures


@dataclass(frozen=True)
class ServerFigures:
    """What the server saw in one run."""

    requests: int
    audio_answers: int
    rate_limited: int
    span_s: float  # first to last arrival
    rate: float  # audio answers per second over the span

    @classmethod
    def of(cls, stats: dict[str, Any]) -> ServerFigures:
        arrivals = stats["arrivals"]
        span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
        answers = stats["audio_answers"]
        # n evenly spaced arrivals span n - 1 intervals: (n - 1) / span is the rate.
        rate = (answers - 1) / span if span > 0 else 0.0
        return cls(stats["requests"], answers, stats["rate_limited"], span, rate)

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "audio_answers": self.audio_answers,
            "rate_limited": self.rate_limited,
            "span_s": round(self.span_s, 3),
            "rate": round(self.rate, 3),
        }


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub table; numbers right-aligned, floats with at most 3 significant decimals."""
    numeric = [all(isinstance(r[i], int | float) for r in rows) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---:" if n else "---" for n in numeric) + "|",
    ]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
