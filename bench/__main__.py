"""``make bench``: every comparison, one after the other, in one process tree.

    .venv/bin/python -m bench                  # the full run (~20 min): docs/benchmarks.{md,json}
    .venv/bin/python -m bench --quick          # small sizes (~2 min), into out/bench-quick/
    .venv/bin/python -m bench --only peers     # one section, merged into the existing JSON

Sections: ``throughput`` (pipeline vs the rate limit), ``peers`` (cozepy loops), ``plot``
(docs/bench-ratelimit.png), ``scale`` (CPU, RSS, chunker and join speed), ``finishing`` (a
45-minute chapter at -18 LUFS to mp3 and m4b: the old two-pass path against today's).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench.common import (
    LATENCY_MODEL,
    ROOT,
    TEXTS,
    ServerKnobs,
    bench_server,
    line_texts,
    machine,
)
from bench.finishing import run_finishing
from bench.peers import run_peer
from bench.plot import plot_run
from bench.report import render
from bench.scale import book_rss, chunker_speed, cpu_per_thousand, join_speed
from bench.throughput import concurrency_for, rate_job, run_rate

SECTIONS = ("throughput", "peers", "plot", "scale", "finishing")
PEER_RATE = 20.0
PLOT_NAME = "bench-ratelimit.png"


@dataclass(frozen=True)
class Sizes:
    chunks: int  # the throughput job
    rates: tuple[float, ...]
    sequential_lines: int  # the sequential SDK loop runs on the job's first lines only
    cpu_chunks: int
    book_characters: int
    join_parts: int  # 10-s parts per joined chapter
    finishing_minutes: float = 45.0  # the chapter finished by the old and the new path


FULL = Sizes(1000, (5.0, 20.0, 50.0), 150, 10_000, 1_000_000, 360)
QUICK = Sizes(120, (5.0, 20.0, 50.0), 30, 1_000, 100_000, 60, 3.0)


def rate_sections(
    sizes: Sizes, sections: set[str], work: Path, out_dir: Path, results: dict[str, Any]
) -> None:
    """Throughput at each R; at R = 20 also the peers and the plot, on the same server."""
    job = rate_job(work, sizes.chunks)
    rates = sizes.rates if "throughput" in sections else (PEER_RATE,)
    runs: list[dict[str, Any]] = []
    for limit in rates:
        with bench_server(replace(LATENCY_MODEL, qps=limit)) as server:
            print(f"bench: R = {limit:g}: pipeline at R and at 2R", file=sys.stderr, flush=True)
            rate_runs, raw = run_rate(server, job, limit, work / f"r{limit:g}")
            runs += rate_runs
            if limit == PEER_RATE and "peers" in sections:
                print("bench: peers (cozepy)", file=sys.stderr, flush=True)
                results["peers"] = peers(server, sizes, work, rate_runs[0])
        if limit == PEER_RATE and "plot" in sections:
            plot_run(raw["arrivals"], raw["timeline"], limit, 2 * limit, out_dir / PLOT_NAME)
            results["plot"] = {"file": PLOT_NAME, "run": f"R = {limit:g}, --qps {2 * limit:g}"}
    if "throughput" in sections:
        results["throughput"] = {
            "chunks": sizes.chunks,
            "server": asdict(LATENCY_MODEL) | {"engine": "tone", "burst": 1},
            "response_format": "wav, 16000 Hz",
            "runs": runs,
        }


def peers(server: Any, sizes: Sizes, work: Path, pipeline: dict[str, Any]) -> dict[str, Any]:
    texts = line_texts(sizes.chunks)
    concurrency = concurrency_for(PEER_RATE)
    sequential = run_peer(server, "sequential", texts[: sizes.sequential_lines], work / "peers")
    gathered = run_peer(server, "gather", texts, work / "peers", concurrency)
    return {
        "limit": PEER_RATE,
        "pipeline": pipeline,
        "sequential": sequential,
        "gather": gathered,
        "ratio_vs_sequential": round(pipeline["server"]["rate"] / sequential["rate"], 2),
        "delivered_share": {
            "pipeline": round(pipeline["delivered"] / pipeline["chunks"], 4),
            "gather": round(gathered["delivered"] / gathered["lines"], 4),
        },
    }


def scale_section(sizes: Sizes, work: Path) -> dict[str, Any]:
    with bench_server(ServerKnobs()) as server:
        print("bench: scale: CPU per 1,000 chunks", file=sys.stderr, flush=True)
        cpu = cpu_per_thousand(server, sizes.cpu_chunks, work)
        print("bench: scale: peak RSS of the big book", file=sys.stderr, flush=True)
        book = book_rss(server, sizes.book_characters, work)
    print("bench: scale: chunker and join speed", file=sys.stderr, flush=True)
    return {
        "cpu": cpu,
        "book": book,
        "chunker": chunker_speed(),
        "join": join_speed(sizes.join_parts, work),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, about 2 minutes")
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only NAME")
    parser.add_argument("--out", type=Path, help="docs/ (full) or out/bench-quick/ (--quick)")
    parser.add_argument(
        "--render", action="store_true", help="only rewrite benchmarks.md from benchmarks.json"
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    out_dir: Path = args.out or (ROOT / ("out/bench-quick" if args.quick else "docs"))
    out_dir.mkdir(parents=True, exist_ok=True)
    sections = set(args.only or SECTIONS)
    json_path = out_dir / "benchmarks.json"
    results: dict[str, Any] = {}
    if args.render:
        results = json.loads(json_path.read_text(encoding="utf-8"))
        (out_dir / "benchmarks.md").write_text(render(results), encoding="utf-8")
        return 0
    if args.only and json_path.exists():
        results = json.loads(json_path.read_text(encoding="utf-8"))
    command = "python -m bench" + (" --quick" if args.quick else "")
    command += "".join(f" --only {name}" for name in args.only or ())
    results |= {"machine": machine(), "command": command, "sizes": asdict(sizes)}
    work = Path(tempfile.mkdtemp(prefix="tts-bench-"))
    try:
        if sections & {"throughput", "peers", "plot"}:
            rate_sections(sizes, sections, work, out_dir, results)
        if "scale" in sections:
            results["scale"] = scale_section(sizes, work)
        if "finishing" in sections:
            print("bench: finishing: old and new path, CPU clock", file=sys.stderr, flush=True)
            results["finishing"] = run_finishing(
                sizes.finishing_minutes, 40, work / "finishing", TEXTS, clock="cpu", threads=True
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    json_path.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", "utf-8")
    (out_dir / "benchmarks.md").write_text(render(results), encoding="utf-8")
    print(f"bench: wrote {out_dir / 'benchmarks.md'} and {json_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
