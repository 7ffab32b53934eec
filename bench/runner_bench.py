"""Runner throughput, rate-limit behaviour and client CPU against a rate-limited local server.

    .venv/bin/python bench/runner_bench.py [--quick] [--chunks 600] [--server-qps 20]
        [--burst 1] [--latency-ms 300] [--jitter 0] [--concurrency 16] [--format pcm]
        [--scenarios match,over] [--json]

The server runs in its own process (``python -m pipeline serve-local --engine tone``), so the
CPU time measured here (``time.process_time``, every thread of this process) is the client's
own. Scenarios, each on a fresh output directory and cache, server counters reset between:

- ``match``: the pipeline at the server's rate (``--qps`` = ``--server-qps``);
- ``over``: the pipeline at twice the server's rate: the limiter must find the real rate.

For each: wall time against the ideal (``chunks / server_qps``, plus one latency for the last
answer), requests, 429 answers and their share, the busiest second the server saw, and client
CPU per chunk, total and with the audio work (``check_audio`` on every answer and chapter
assembly, re-timed alone afterwards) taken out. Targets (issue 4): ``match`` within 5 % of
ideal with no failure; ``over`` within 15 % and under 5 % of requests refused; under 2 ms of
client CPU per chunk net of audio work.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio

from pipeline.audio import ChapterSpec, Part, assemble_chapter, check_audio
from pipeline.cache import ChunkCache
from pipeline.coze.client import ClientConfig, SpeechClient
from pipeline.limits import RateLimit
from pipeline.manifest import load_job
from pipeline.planning import Plan, plan_job
from pipeline.runner import RunConfig, Runner, lookup_cache
from pipeline.speech import FILE_EXTENSIONS
from tests.support import busiest_second

LINES_PER_CHAPTER = 60


@dataclass(frozen=True)
class Result:
    scenario: str
    pipeline_qps: float
    chunks: int
    wall_s: float
    ideal_s: float
    over_ideal_pct: float
    status: str
    requests: int
    rate_limited: int
    rate_limited_pct: float
    busiest_second: int
    cpu_ms_per_chunk: float  # user + system, every thread of this process
    user_ms_per_chunk: float
    system_ms_per_chunk: float
    audio_cpu_ms_per_chunk: float
    net_cpu_ms_per_chunk: float


@contextmanager
def local_server(args: argparse.Namespace) -> Iterator[str]:
    """``serve-local`` in a subprocess; yields its base URL once it is listening."""
    command = [
        sys.executable, "-m", "pipeline", "serve-local", "--engine", "tone", "--port", "0",
        "--qps", str(args.server_qps), "--burst", str(args.burst),
        "--latency-ms", str(args.latency_ms), "--jitter", str(args.jitter),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "COZE_API_TOKEN"}
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as server:
        try:
            assert server.stdout is not None
            banner = server.stdout.readline()  # "Coze-compatible local server on URL (...)"
            url = banner.split(" on ", 1)[1].split()[0]
            yield url
        finally:
            server.terminate()
            server.wait(timeout=10)


def admin(url: str, route: str, method: str = "GET") -> dict[str, Any]:
    request = urllib.request.Request(f"{url}/_local/{route}", method=method, data=None)
    with urllib.request.urlopen(request, timeout=10) as answer:
        data: dict[str, Any] = json.loads(answer.read() or b"{}")
        return data


def write_job(directory: Path, chunks: int, fmt: str) -> Path:
    """A job of ``chunks`` one-chunk lines in chapters of ``LINES_PER_CHAPTER``."""
    chapters = []
    for c in range(0, chunks, LINES_PER_CHAPTER):
        lines = [
            {"text": f"Chapter {c // LINES_PER_CHAPTER} line {i}: a short sentence to speak."}
            for i in range(c, min(c + LINES_PER_CHAPTER, chunks))
        ]
        chapters.append({"id": f"ch{c // LINES_PER_CHAPTER:03d}", "lines": lines})
    job = {
        "defaults": {
            "voice_id": "local-tone-1",
            "response_format": fmt,
            "sample_rate": 16000,
            "pause_ms": 0,
        },
        "chapters": chapters,
    }
    path = directory / "bench-job.json.yaml"
    path.write_text(json.dumps(job), encoding="utf-8")  # JSON is YAML
    return path


async def run_once(plan: Plan, url: str, out: Path, qps: float, concurrency: int) -> str:
    config = RunConfig(
        out_dir=out,
        cache_dir=out / ".cache",
        host_id=url,
        rate=RateLimit(qps=qps),
        concurrency=concurrency,
    )
    client_config = ClientConfig(base_url=url, token="bench-token")
    async with SpeechClient(client_config) as client:
        report = await Runner(plan, config, client).run()
    return report.status


def audio_cpu_s(plan: Plan, out: Path, host_id: str) -> float:
    """CPU seconds of a finished run's audio work, redone alone: answer checks and assembly."""
    found = lookup_cache(plan, ChunkCache(out / ".cache"), host_id)
    redo = out / "redo"
    redo.mkdir()
    started = time.process_time()
    for cp, paths in zip(plan.chapters, found.paths, strict=True):
        parts = []
        for chunk, path in zip(cp.chunks, paths, strict=True):
            assert path is not None, "a chunk of a finished run is missing from its cache"
            check_audio(path.read_bytes(), cp.response_format, cp.sample_rate)
            parts.append(Part(path, chunk.text, chunk.line_id, True, 0))
        ext = FILE_EXTENSIONS[cp.response_format]
        spec = ChapterSpec(
            parts=tuple(parts),
            response_format=cp.response_format,
            sample_rate=cp.sample_rate,
            out_path=redo / f"{cp.chapter.id}.{ext}",
        )
        assemble_chapter(spec)
    return time.process_time() - started


def scenario(
    name: str, args: argparse.Namespace, url: str, plan: Plan, root: Path, qps: float
) -> Result:
    admin(url, "reset", "POST")
    out = root / name
    times0, wall0 = os.times(), time.monotonic()
    status = anyio.run(run_once, plan, url, out, qps, args.concurrency)
    wall, times1 = time.monotonic() - wall0, os.times()
    user, system = times1.user - times0.user, times1.system - times0.system
    cpu = user + system
    stats = admin(url, "stats")
    audio = audio_cpu_s(plan, out, url)
    chunks = plan.chunk_count
    ideal = chunks / args.server_qps + args.latency_ms / 1000
    requests = int(stats["requests"])
    limited = int(stats["rate_limited"])
    return Result(
        scenario=name,
        pipeline_qps=qps,
        chunks=chunks,
        wall_s=round(wall, 2),
        ideal_s=round(ideal, 2),
        over_ideal_pct=round(100 * (wall - ideal) / ideal, 1),
        status=status,
        requests=requests,
        rate_limited=limited,
        rate_limited_pct=round(100 * limited / max(requests, 1), 1),
        busiest_second=busiest_second(stats["arrivals"]),
        cpu_ms_per_chunk=round(1000 * cpu / chunks, 3),
        user_ms_per_chunk=round(1000 * user / chunks, 3),
        system_ms_per_chunk=round(1000 * system / chunks, 3),
        audio_cpu_ms_per_chunk=round(1000 * audio / chunks, 3),
        net_cpu_ms_per_chunk=round(1000 * (cpu - audio) / chunks, 3),
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="120 chunks: a smoke run of ~10 s")
    p.add_argument("--chunks", type=int, default=600)
    p.add_argument("--server-qps", type=float, default=20.0)
    p.add_argument("--burst", type=int, default=1)
    p.add_argument("--latency-ms", type=float, default=300.0)
    p.add_argument("--jitter", type=float, default=0.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--format", default="pcm", choices=("pcm", "wav", "mp3", "ogg_opus"))
    p.add_argument("--scenarios", default="match,over")
    p.add_argument("--json", action="store_true", help="one JSON object per scenario")
    p.add_argument(
        "--work-dir",
        type=Path,
        help="where outputs and the cache go (default: a temporary directory); a tmpfs such "
        "as /dev/shm takes the disk's fsync cost out of the CPU figures",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.chunks = 120
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    factors = {"match": 1.0, "over": 2.0}
    with (
        tempfile.TemporaryDirectory(prefix="runner-bench-", dir=args.work_dir) as tmp,
        local_server(args) as url,
    ):
        root = Path(tmp)
        plan = plan_job(load_job(write_job(root, args.chunks, args.format)))
        for name in args.scenarios.split(","):
            result = scenario(name, args, url, plan, root, args.server_qps * factors[name])
            if args.json:
                print(json.dumps(asdict(result)), flush=True)
            else:
                print(_describe(result), flush=True)
    return 0


def _describe(r: Result) -> str:
    return (
        f"{r.scenario}: pipeline {r.pipeline_qps:g} qps, {r.chunks} chunks in {r.wall_s} s "
        f"(ideal {r.ideal_s} s, {r.over_ideal_pct:+.1f} %), {r.status}; {r.requests} requests, "
        f"{r.rate_limited} answered 429 ({r.rate_limited_pct} %), busiest second "
        f"{r.busiest_second}; client CPU {r.cpu_ms_per_chunk} ms/chunk (user "
        f"{r.user_ms_per_chunk}, system {r.system_ms_per_chunk}), audio work "
        f"{r.audio_cpu_ms_per_chunk}, net {r.net_cpu_ms_per_chunk}"
    )


if __name__ == "__main__":
    sys.exit(main())
