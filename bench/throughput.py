"""Throughput against the server's rate limit: achieved requests/s over R, and the 429s.

For each R, one server process (tone engine, the latency model, ``--qps R``) and one job of
``chunks`` lines of 100-300 bytes (wav at 16 kHz: no encoding cost on the server). The
pipeline runs twice as a user runs it: (a) ``--qps R``, the true limit; (b) ``--qps 2R``,
where it must find the limit itself. The figure is the server's count of audio answers per
second between the first and the last arrival, over R; end to end (process start to exit)
is reported beside it.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from bench.common import (
    BenchServer,
    PipelineSettings,
    ServerFigures,
    line_texts,
    run_pipeline,
    split_evenly,
    write_job,
)
from bench.evidence import refusal_evidence

CHAPTERS = 10
# Requests in flight must cover qps x latency: the slowest answer is 300 ms + 0.5 ms x 300 B,
# +30 %: 0.585 s; R x that, rounded up to a power of two, at least 8 (5 -> 8, 20 -> 16,
# 50 -> 32). The same for the 2x run: the cap is the user's, the rate is what is searched.
MAX_LATENCY_S = (0.300 + 0.0005 * 300) * 1.3


def concurrency_for(rate: float) -> int:
    return max(8, 1 << math.ceil(math.log2(rate * MAX_LATENCY_S)))


@dataclass
class RunFigures:
    """One pipeline run against one server: the server's view and the client's."""

    label: str
    settings: PipelineSettings
    server: ServerFigures
    limit: float
    wall_s: float
    cpu_s: float
    max_rss_mb: float
    delivered: int
    chunks: int
    status: str
    max_in_flight: int

    @property
    def ratio(self) -> float:
        return self.server.rate / self.limit

    @property
    def end_to_end_rate(self) -> float:
        return self.delivered / self.wall_s

    @property
    def share_429(self) -> float:
        return self.server.rate_limited / self.server.requests if self.server.requests else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "qps": self.settings.qps,
            "concurrency": self.settings.concurrency,
            "limit": self.limit,
            "server": self.server.to_json(),
            "ratio": round(self.ratio, 4),
            "share_429": round(self.share_429, 4),
            "end_to_end_rate": round(self.end_to_end_rate, 3),
            "wall_s": round(self.wall_s, 2),
            "client_cpu_s": round(self.cpu_s, 2),
            "client_max_rss_mb": round(self.max_rss_mb, 1),
            "delivered": self.delivered,
            "chunks": self.chunks,
            "status": self.status,
            "max_in_flight": self.max_in_flight,
        }


def measure_pipeline(
    server: BenchServer,
    job: Path,
    settings: PipelineSettings,
    limit: float,
    out_dir: Path,
    label: str,
) -> tuple[RunFigures, dict[str, Any]]:
    """One run from a reset server; returns its figures and the server's raw stats+timeline."""
    server.reset()
    run, report = run_pipeline(job, server.base_url, settings, out_dir)
    stats = server.stats()
    timeline = server.timeline()
    totals = report.get("totals", {})
    chunks = int(totals.get("chunks", 0))
    failed_chunks = sum(c["chunks"] for c in report.get("chapters", []) if c["status"] != "ok")
    figures = RunFigures(
        label=label,
        settings=settings,
        server=ServerFigures.of(stats),
        limit=limit,
        wall_s=run.wall_s,
        cpu_s=run.cpu_s,
        max_rss_mb=run.max_rss_mb,
        delivered=chunks - failed_chunks,
        chunks=chunks,
        status=str(report.get("status", f"exit {run.returncode}")),
        max_in_flight=int(stats["max_in_flight"]),
    )
    shutil.rmtree(out_dir, ignore_errors=True)  # gigabytes of wav over a whole bench
    raw = {"arrivals": stats["arrivals"], "timeline": timeline, "limit": limit, "label": label}
    return figures, raw


def rate_job(work: Path, chunks: int) -> Path:
    return write_job(work / "job", split_evenly(line_texts(chunks), CHAPTERS))


def run_rate(
    server: BenchServer, job: Path, limit: float, work: Path
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(a) at the limit and (b) at twice it, on one server: each run's figures with the
    evidence from the server's arrivals, and (b)'s raw record (for the plot)."""
    concurrency = concurrency_for(limit)
    runs: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}
    for label, qps in (("known", limit), ("2x", 2 * limit)):
        figures, raw = measure_pipeline(
            server, job, PipelineSettings(qps, concurrency), limit, work / label, label
        )
        arrivals = sorted(raw["arrivals"])
        runs.append(
            figures.to_json()
            | {
                "evidence": refusal_evidence(raw, limit),
                "arrivals_s": [round(t - arrivals[0], 4) for t in arrivals],
            }
        )
    runs[0]["limiter_alone"] = limiter_alone(limit)
    return runs, raw

async def _limiter_alone(limit: float, tokens: int) -> float:
    from pipeline.limits import AdaptiveRateLimiter, RateLimit

    limiter = AdaptiveRateLimiter(RateLimit(qps=limit))
    await limiter.acquire()
    started = time.monotonic()
    for _ in range(tokens):
        await limiter.acquire()
    return tokens / (time.monotonic() - started)


def limiter_alone(limit: float, seconds: float = 2.0) -> float:
    """Tokens/s of the pipeline's limiter on an idle event loop, over R: its own pacing."""
    rate = anyio.run(_limiter_alone, limit, max(2, round(limit * seconds)))
    return round(rate / limit, 4)
