"""Throughput against the server's rate limit: achieved requests/s over R, and the 429s.

    .venv/bin/python -m bench.throughput [--quick] [--seconds 15] [--repeats 3]
        [--rates 5,20,50] [--bursts 1,2] [--clients pipeline,old,paced,sequential]
        [--json] [--save FILE.json] [--plot FILE.png] [--server-switch-ms 0.5]

runs every client side by side on one server per (burst, R), each as its own process, with
the limit known (``--qps R``) and unknown (``--qps 2R``), ``--repeats`` times, and prints the
median of each figure (JSON with ``--json``). Clients: ``pipeline`` (``python -m pipeline
run``), ``old`` (the same with the limiter before issue 18, ``bench/old_limiter.py``),
``paced`` (aiolimiter + tenacity + semaphore, ``bench/peers.py``), ``sequential`` (the cozepy
README loop, limit known only, a few lines: it is latency-bound, not rate-bound).

For each R, one server process (tone engine, the latency model, ``--qps R``) and one job of
``chunks`` lines of 100-300 bytes (wav at 16 kHz: no encoding cost on the server). The
pipeline runs twice as a user runs it: (a) ``--qps R``, the true limit; (b) ``--qps 2R``,
where it must find the limit itself. The figure is the server's count of audio answers per
second between the first and the last arrival, over R; end to end (process start to exit)
is reported beside it. Each run also records the server loop's lag (``bench/server.py``:
how late the rate check stamps an arrival) and the machine's load average; ``--save`` writes
rows, load and machine as JSON, ``--plot`` draws the medians (``bench.plot.plot_matrix``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio

from bench.common import (
    LATENCY_MODEL,
    TOKEN,
    BenchServer,
    PipelineSettings,
    ServerFigures,
    bench_server,
    line_texts,
    run_child,
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


# ---------------------------------------------------------------- side by side


CLIENTS = ("pipeline", "old", "paced", "sequential")
SEQUENTIAL_LINES = 12
KNOWN, UNKNOWN = "known", "2x"


def run_module(
    module: str, job: Path, server: BenchServer, qps: float, concurrency: int, out_dir: Path
) -> dict[str, Any]:
    """``python -m MODULE run JOB`` (the pipeline's CLI, or the old limiter's wrapper)."""
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    server.reset()
    argv = [
        sys.executable, "-m", module, "run", str(job), "--base-url", server.base_url,
        "-o", str(out_dir), *PipelineSettings(qps, concurrency).argv(),
    ]  # fmt: skip
    child = run_child(argv, cwd=out_dir, env={"COZE_API_TOKEN": TOKEN})
    report_path = out_dir / "report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    failed = sum(c["chunks"] for c in report.get("chapters", []) if c["status"] != "ok")
    delivered = int(report.get("totals", {}).get("chunks", 0)) - failed
    if child.returncode != 0:
        sys.stderr.write(f"{module} exited {child.returncode}: {child.stderr[-1000:]}\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    return {"wall_s": child.wall_s, "delivered": delivered, "cpu_s": child.cpu_s}


def one_run(
    client: str, server: BenchServer, job: Path, texts: list[str], limit: float, mode: str,
    work: Path,
) -> dict[str, Any]:  # fmt: skip
    """One client once: server answers/s over R, 429 share, end-to-end lines/s over R."""
    from bench.peers import run_peer

    qps = limit if mode == KNOWN else 2 * limit
    concurrency = concurrency_for(limit)
    if client in ("pipeline", "old"):
        module = "pipeline" if client == "pipeline" else "bench.old_limiter"
        run = run_module(module, job, server, qps, concurrency, work / client)
        lines = len(texts)
    else:
        lines = SEQUENTIAL_LINES if client == "sequential" else len(texts)
        peer = run_peer(server, client, texts[:lines], work / client, concurrency, qps)
        run = {"wall_s": peer["wall_s"], "delivered": peer["delivered"], "cpu_s": 0.0}
    figures = ServerFigures.of(server.stats())
    lag = server.loop_lag() or {}
    return {
        "ratio": figures.rate / limit,
        "share_429": figures.rate_limited / max(figures.requests, 1),
        "end_to_end": run["delivered"] / run["wall_s"] / limit,
        "delivered_share": run["delivered"] / lines,
        "server_lag_p90_ms": lag.get("p90", math.nan),
        "load": os.getloadavg()[0],
    }


def side_by_side(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    """Every (burst, R, mode, client), ``repeats`` times interleaved; medians."""
    rows: list[dict[str, Any]] = []
    for burst in args.bursts:
        for limit in args.rates:
            lines = max(20, round(limit * args.seconds))
            texts = line_texts(lines)
            job = write_job(work / f"job{lines}", split_evenly(texts, CHAPTERS))
            knobs = replace(
                LATENCY_MODEL, qps=limit, burst=burst, switch_interval_ms=args.server_switch_ms
            )
            with bench_server(knobs) as server:
                runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
                for _ in range(args.repeats):
                    for mode in (KNOWN, UNKNOWN):
                        for client in args.clients:
                            if client == "sequential" and mode == UNKNOWN:
                                continue
                            figures = one_run(client, server, job, texts, limit, mode, work)
                            runs.setdefault((mode, client), []).append(figures)
                            print(f"burst {burst} R {limit:g} {mode} {client}: "
                                  f"{_short(figures)}", file=sys.stderr, flush=True)  # fmt: skip
            for (mode, client), found in runs.items():
                rows.append(
                    {"burst": burst, "R": limit, "mode": mode, "client": client, "lines": lines,
                     "runs": len(found)}
                    | {k: round(statistics.median(f[k] for f in found), 4) for k in found[0]}
                )  # fmt: skip
    return rows


def _short(figures: dict[str, Any]) -> str:
    return " ".join(f"{k} {v:.3f}" for k, v in figures.items())


def table(rows: Sequence[dict[str, Any]]) -> str:
    from bench.common import markdown_table

    return markdown_table(
        ["burst", "R", "--qps", "client", "server /R", "429 %", "end to end /R", "delivered",
         "server lag p90 ms", "load"],
        [
            (r["burst"], r["R"], "R" if r["mode"] == KNOWN else "2R", r["client"], r["ratio"],
             round(100 * r["share_429"], 2), r["end_to_end"], r["delivered_share"],
             r["server_lag_p90_ms"], round(r["load"], 1))
            for r in rows
        ],
    )  # fmt: skip


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="6 s of work per run, 1 repeat")
    p.add_argument("--seconds", type=float, default=15.0, help="lines per run: R x this")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rates", default="5,20,50")
    p.add_argument("--bursts", default="1,2")
    p.add_argument("--clients", default=",".join(CLIENTS))
    p.add_argument("--json", action="store_true")
    p.add_argument("--save", type=Path, help="write rows, load and machine here (JSON)")
    p.add_argument("--plot", type=Path, help="draw the medians here (PNG)")
    p.add_argument(
        "--server-switch-ms", type=float, default=None,
        help="the server process's GIL hand-over interval (bench/server.py; Python's is 5)",
    )  # fmt: skip
    args = p.parse_args(argv)
    if args.quick:
        args.seconds, args.repeats = 6.0, 1
    args.rates = [float(r) for r in args.rates.split(",")]
    args.bursts = [int(b) for b in args.bursts.split(",")]
    args.clients = [c for c in args.clients.split(",") if c]
    unknown = set(args.clients) - set(CLIENTS)
    if unknown:
        p.error(f"unknown client(s): {', '.join(sorted(unknown))}; known: {', '.join(CLIENTS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from bench.common import machine

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tts-throughput-") as tmp:
        rows = side_by_side(args, Path(tmp))
    load = load_line(rows)
    print(json.dumps(rows, indent=1) if args.json else table(rows) + "\n\n" + load)
    if args.save:
        record = {"machine": machine(), "minutes": round((time.monotonic() - started) / 60, 1),
                  "load": load, "argv": sys.argv[1:], "rows": rows}  # fmt: skip
        args.save.write_text(json.dumps(record, indent=1))
    if args.plot:
        from bench.plot import plot_matrix

        plot_matrix(rows, args.plot)
    return 0


def load_line(rows: Sequence[dict[str, Any]]) -> str:
    """The machine's 1-minute load average at the end of each run (median of the runs'
    medians, lowest, highest) and the server loop's lag: what the figures were measured on."""
    loads = [r["load"] for r in rows]
    lags = [r["server_lag_p90_ms"] for r in rows if not math.isnan(r["server_lag_p90_ms"])]
    text = (
        f"load average (1 min, {os.cpu_count()} CPUs) at the end of the runs: median "
        f"{statistics.median(loads):.1f}, {min(loads):.1f} to {max(loads):.1f}"
    )
    if lags:
        text += f"; server loop lag p90: median {statistics.median(lags):.2f} ms"
    return text


if __name__ == "__main__":
    sys.exit(main())
