"""The cost of scale: client CPU per 1,000 chunks, peak RSS on a big book, chunker and join MB/s.

- CPU: ``python -m pipeline run`` on ``chunks`` lines (tone engine, no latency, no limit,
  wav 16 kHz); the client process's own user+system seconds (``os.wait4``), per 1,000 chunks.
  ``cpu_side_by_side`` measures this tree and an earlier git revision of ``pipeline/`` in
  turns, on one server and one job: ``python -m bench.scale --chunks 10000 --baseline REV``.
- Peak RSS: a book of ``book_characters`` characters of the Chinese corpus (so that 1,024-byte
  chunks are full: 3,000+ chunks for 1,000,000 characters) in chapters read from text files,
  run end to end against the server process, wav at 8 kHz; the client's ru_maxrss.
- Chunker: ``split_text`` over each language's corpus lines, MB of UTF-8 per second.
- Join: ``assemble_chapter`` on ``join_parts`` parts of 10 s per format; MB of parts per second.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.assembly_memory import EXT, PART_S, RATE, TONES, make_part
from bench.common import (
    ROOT,
    TOKEN,
    VOICE,
    BenchServer,
    PipelineSettings,
    ServerFigures,
    ServerKnobs,
    bench_server,
    corpus_paragraphs,
    line_texts,
    machine,
    run_child,
    run_pipeline,
    split_evenly,
    write_job,
)
from pipeline.audio import ChapterSpec, Part, assemble_chapter
from pipeline.chunking import split_text

if TYPE_CHECKING:
    from pipeline.localserver.stats import ServerStats

UNLIMITED = PipelineSettings(qps=10_000, concurrency=16)  # the highest --qps allowed
BOOK_CHAPTERS = 30
JOIN_FORMATS = ("mp3", "wav", "pcm", "ogg_opus")


def cpu_per_thousand(server: BenchServer, chunks: int, work: Path) -> dict[str, Any]:
    job = write_job(work / "cpu-job", split_evenly(line_texts(chunks), 20))
    server.reset()
    run, report = run_pipeline(job, server.base_url, UNLIMITED, work / "cpu-out")
    figures = ServerFigures.of(server.stats())
    shutil.rmtree(work / "cpu-out", ignore_errors=True)
    return {
        "chunks": chunks,
        "status": report.get("status"),
        "client_cpu_s": round(run.cpu_s, 2),
        "cpu_s_per_1000": round(run.cpu_s / chunks * 1000, 3),
        "wall_s": round(run.wall_s, 2),
        "client_max_rss_mb": round(run.max_rss_mb, 1),
        "server": figures.to_json(),
    }


# Runs ``python -m pipeline`` from the source tree in argv[1] (first on sys.path), so that two
# trees are measured by the same launcher.
_FROM_TREE = (
    "import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); "
    "runpy.run_module('pipeline', run_name='__main__', alter_sys=True)"
)


def cpu_side_by_side(
    server: BenchServer, chunks: int, work: Path, baseline: str, rounds: int = 1
) -> dict[str, Any]:
    """Client CPU per chunk of this tree and of git revision ``baseline``'s ``pipeline/``,
    run in turns (``rounds`` each) on one job against one server: the machine's load and
    the server are the same for both. The figure is the median of the rounds."""
    source = _extract(baseline, work / "baseline-src")
    job = write_job(work / "cpu-job", split_evenly(line_texts(chunks), 20))
    trees = {f"baseline {baseline}": source, "current": ROOT}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for _ in range(rounds):
        for name, tree in trees.items():
            server.reset()
            out = work / "cpu-out"
            argv = [
                sys.executable, "-c", _FROM_TREE, str(tree), "run", str(job),
                "--base-url", server.base_url, "-o", str(out), "--progress", "jsonl",
                *UNLIMITED.argv(),
            ]  # fmt: skip
            out.mkdir(parents=True, exist_ok=True)
            run = run_child(argv, cwd=out, env={"COZE_API_TOKEN": TOKEN})
            report = json.loads((out / "report.json").read_text()) if run.returncode == 0 else {}
            runs[name].append(
                {"status": report.get("status", f"exit {run.returncode}"),
                 "cpu_ms_per_chunk": round(run.cpu_s / chunks * 1000, 3),
                 "wall_s": round(run.wall_s, 2),
                 "requests": server.stats()["requests"]}
            )  # fmt: skip
            shutil.rmtree(out, ignore_errors=True)
    return {
        "chunks": chunks,
        "rounds": rounds,
        "trees": {
            name: {
                "median_cpu_ms_per_chunk": _median([r["cpu_ms_per_chunk"] for r in rows]),
                "runs": rows,
            }
            for name, rows in runs.items()
        },  # fmt: skip
    }


def _extract(revision: str, folder: Path) -> Path:
    """``pipeline/`` as it was at git ``revision``, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "archive", revision, "pipeline"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def _compile(tree: Path) -> None:
    """Byte-compile ``tree``'s ``pipeline/`` as an install does, so that neither tree pays for
    compiling its sources on every start (PYTHONDONTWRITEBYTECODE would keep it so)."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(tree / "pipeline")],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip


def first_requests(trees: dict[str, Path], runs: int, work: Path) -> dict[str, Any]:
    """Seconds from spawning ``python -m pipeline run`` (a 3-line job, from each of ``trees``)
    to the server's first speech request, ``runs`` times each, the trees taking turns so that
    a machine whose load drifts weighs on all alike: the start-up a user waits through, and
    the CPU seconds the client had used by then (``/proc``, 10 ms ticks), which a loaded
    machine inflates less. The server runs in this process, on the same monotonic clock."""
    from pipeline.localserver import ServerConfig, serve_in_thread

    job = write_job(work / "startup-job", [["One.", "Two.", "Three."]])
    delays: dict[str, list[float]] = {name: [] for name in trees}
    cpu: dict[str, list[float]] = {name: [] for name in trees}
    with serve_in_thread(ServerConfig()) as server:
        for i in range(runs):
            for name, tree in trees.items():
                out = work / f"startup-out-{i}"
                server.stats.reset()
                delay, used = _first_request(tree, job, server.base_url, out, server.stats)
                delays[name].append(delay)
                cpu[name].append(used)
                shutil.rmtree(out, ignore_errors=True)
    load = [round(x, 2) for x in os.getloadavg()]
    return {
        name: {"wall_s": delays[name], "median_wall_s": _median(delays[name]),
               "cpu_s": cpu[name], "median_cpu_s": _median(cpu[name]), "load": load}
        for name in trees
    }  # fmt: skip


def _first_request(
    tree: Path, job: Path, base_url: str, out: Path, stats: ServerStats
) -> tuple[float, float]:
    """One start-up: seconds to the first speech request, and the client's CPU by then."""
    argv = [
        sys.executable, "-c", _FROM_TREE, str(tree), "run", str(job),
        "--base-url", base_url, "-o", str(out), "--progress", "none",
    ]  # fmt: skip
    started = time.monotonic()
    env = {**os.environ, "COZE_API_TOKEN": TOKEN}
    with subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL) as child:  # fmt: skip
        while child.poll() is None and not stats.arrivals:
            time.sleep(0.001)
        if not stats.arrivals:
            raise RuntimeError(f"the start-up run exited {child.returncode} unheard")
        used = _cpu_s(child.pid)
        child.wait()
    return round(stats.arrivals[0] - started, 3), used


def _cpu_s(pid: int) -> float:
    """User + system seconds of a running process so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 3)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return round((ordered[middle - 1] + ordered[middle]) / 2, 3)


def book_job(directory: Path, characters: int) -> tuple[Path, int]:
    """A job of ``BOOK_CHAPTERS`` chapter files holding ``characters`` corpus characters."""
    directory.mkdir(parents=True, exist_ok=True)
    source = "\n\n".join(corpus_paragraphs("zh"))
    text = (source * (characters // len(source) + 1))[:characters]
    per_chapter = -(-characters // BOOK_CHAPTERS)
    chapters = []
    for i in range(BOOK_CHAPTERS):
        name = f"ch{i + 1:03d}.txt"
        (directory / name).write_text(text[i * per_chapter : (i + 1) * per_chapter], "utf-8")
        chapters.append(f"  - id: ch{i + 1:03d}\n    text_file: {name}\n")
    job = directory / "book.yaml"
    job.write_text(
        "defaults:\n"
        f"  voice_id: {VOICE}\n  response_format: wav\n  sample_rate: 8000\n  pause_ms: 300\n"
        "chapters:\n" + "".join(chapters),
        encoding="utf-8",
    )
    return job, len(text)


def book_rss(server: BenchServer, characters: int, work: Path) -> dict[str, Any]:
    job, actual = book_job(work / "book-job", characters)
    server.reset()
    run, report = run_pipeline(job, server.base_url, UNLIMITED, work / "book-out")
    shutil.rmtree(work / "book-out", ignore_errors=True)
    totals = report.get("totals", {})
    return {
        "characters": actual,
        "chapters": BOOK_CHAPTERS,
        "chunks": totals.get("chunks"),
        "audio_hours": round(totals.get("audio_seconds", 0) / 3600, 1),
        "status": report.get("status"),
        "peak_rss_mb": round(run.max_rss_mb, 1),
        "wall_s": round(run.wall_s, 1),
        "client_cpu_s": round(run.cpu_s, 1),
    }


def chunker_speed(megabytes_each: float = 2.0, repeat: int = 3) -> list[dict[str, Any]]:
    """split_text over each language's corpus lines, repeated to about ``megabytes_each`` MB
    (the corpus alone is 0.04-0.12 MB: too little to time): best of ``repeat``, MB/s."""
    rows = []
    for language in ("zh", "en", "ja"):
        lines = corpus_paragraphs(language)
        size = sum(len(line.encode()) for line in lines)
        lines = lines * max(1, round(megabytes_each * 1e6 / size))
        megabytes = sum(len(line.encode()) for line in lines) / 1e6
        best = float("inf")
        chunks = 0
        for _ in range(repeat):
            started = time.perf_counter()
            chunks = sum(len(split_text(line)) for line in lines)
            best = min(best, time.perf_counter() - started)
        rows.append(
            {"language": language, "mb": round(megabytes, 3), "chunks": chunks,
             "mb_per_s": round(megabytes / best, 2)}
        )  # fmt: skip
    return rows


def join_speed(parts: int, work: Path) -> list[dict[str, Any]]:
    """``assemble_chapter`` of ``parts`` 10-s parts (24 kHz mono) per format, with srt."""
    rows = []
    for fmt in JOIN_FORMATS:
        directory = work / f"join-{fmt}"
        directory.mkdir(parents=True, exist_ok=True)
        files = []
        for i, freq in enumerate(TONES):
            path = directory / f"part{i}.{EXT[fmt]}"
            make_part(path, fmt, freq)
            files.append(path)
        chosen = [files[i % len(files)] for i in range(parts)]
        spec = ChapterSpec(
            parts=tuple(
                Part(path, f"chunk {i}", f"l{i}", True, 300) for i, path in enumerate(chosen)
            ),
            response_format=fmt,
            sample_rate=RATE,
            out_path=directory / f"chapter.{EXT[fmt]}",
            subtitles=("srt",),
        )
        started = time.perf_counter()
        result = assemble_chapter(spec)
        seconds = time.perf_counter() - started
        megabytes = sum(p.stat().st_size for p in chosen) / 1e6
        rows.append(
            {
                "format": fmt,
                "parts": parts,
                "audio_hours": round(result.duration_s / 3600, 2),
                "mb": round(megabytes, 1),
                "seconds": round(seconds, 2),
                "mb_per_s": round(megabytes / seconds, 1),
                "audio_x_realtime": round(parts * PART_S / seconds),
            }
        )
        shutil.rmtree(directory, ignore_errors=True)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="client CPU per chunk, this tree vs a revision")
    parser.add_argument("--chunks", type=int, default=10_000, help="job size (small: 500)")
    parser.add_argument("--baseline", default="HEAD", help="git revision to compare with")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each tree, in turns")
    parser.add_argument(
        "--startup", type=int, metavar="N", help="instead: N start-ups to the first request"
    )
    args = parser.parse_args(argv)
    if args.startup:
        with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
            work = Path(tmp)
            base = _extract(args.baseline, work / "baseline-src")
            for tree in (base, ROOT):
                _compile(tree)
            trees = {f"baseline {args.baseline}": base, "current": ROOT}
            result = first_requests(trees, args.startup, work)
        print(json.dumps({"machine": machine(), "first_request_s": result}, indent=1))
        return 0
    with (
        tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp,
        bench_server(ServerKnobs()) as server,
    ):
        result = cpu_side_by_side(server, args.chunks, Path(tmp), args.baseline, args.rounds)
    print(json.dumps({"machine": machine(), "cpu": result}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
