"""Cost of committing one cache entry: fsync per entry (before) vs batched syncs (now).

    .venv/bin/python -m bench.cache_commit [--entries 2000] [--size 20000] [--runs 5]
                                           [--dir DIR] [--quick] [--json FILE]

Both variants store the same entries (distinct keys, ``--size`` random bytes each) into a
fresh cache folder on the real disk (default: under ``out/``, not tmpfs), one after the
other within each run, alternating which goes first. "before" is the commit this module
replaced, kept here verbatim in spirit: temp folder beside the entry, write + fsync the audio
and the checksum, fsync the temp folder, rename, fsync the shard folder (four fsyncs).
"now" is ``ChunkCache.put`` (write + rename, one syncfs per second or per 256 entries) with
the final ``close()`` (last sync) counted in. Figures are per entry: wall time and this
process's CPU time, the median over the runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pipeline.cache import ChunkCache

ROOT = Path(__file__).resolve().parent.parent


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def legacy_put(root: Path, key: str, audio: bytes, ext: str) -> Path:
    """The commit before batched syncs: four fsyncs per entry."""
    entry = root / key[:2] / key
    entry.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".tmp-{key[:16]}-", dir=entry.parent))
    name = f"chunk.{ext}"
    _write_synced(temp / name, audio)
    line = f"{hashlib.sha256(audio).hexdigest()}  {name}\n"
    _write_synced(temp / "chunk.sha256", line.encode("ascii"))
    _fsync_dir(temp)
    os.rename(temp, entry)
    _fsync_dir(entry.parent)
    return entry / name


def _time_before(folder: Path, entries: list[tuple[str, bytes]]) -> tuple[float, float, int]:
    wall, cpu = time.perf_counter(), time.process_time()
    for key, audio in entries:
        legacy_put(folder, key, audio, "wav")
    return time.perf_counter() - wall, time.process_time() - cpu, 4 * len(entries)


def _time_now(folder: Path, entries: list[tuple[str, bytes]]) -> tuple[float, float, int]:
    wall, cpu = time.perf_counter(), time.process_time()
    cache = ChunkCache(folder)
    for key, audio in entries:
        cache.put(key, audio, "wav")
    cache.close()
    return time.perf_counter() - wall, time.process_time() - cpu, cache.syncs


VARIANTS: dict[str, Callable[[Path, list[tuple[str, bytes]]], tuple[float, float, int]]] = {
    "before": _time_before,
    "now": _time_now,
}


def measure(base: Path, count: int, size: int, runs: int) -> dict[str, dict[str, float]]:
    samples: dict[str, list[tuple[float, float, int]]] = {name: [] for name in VARIANTS}
    for run in range(runs):
        entries = [
            (ChunkCache.key({"input": f"{run}-{n}"}, "https://bench"), os.urandom(size))
            for n in range(count)
        ]
        order = list(VARIANTS) if run % 2 == 0 else list(reversed(VARIANTS))
        for name in order:
            folder = base / f"{name}-{run}"
            samples[name].append(VARIANTS[name](folder, entries))
            shutil.rmtree(folder)
    return {
        name: {
            "wall_us_per_entry": statistics.median(w for w, _, _ in got) / count * 1e6,
            "cpu_us_per_entry": statistics.median(c for _, c, _ in got) / count * 1e6,
            "syncs_per_run": statistics.median(s for _, _, s in got),
        }
        for name, got in samples.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--size", type=int, default=20_000, help="bytes per entry")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", type=Path, help="where to build the caches (real disk)")
    parser.add_argument("--quick", action="store_true", help="200 entries, 3 runs")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.quick:
        args.entries, args.runs = 200, 3
    parent = args.dir or ROOT / "out"
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-cache-", dir=parent) as tmp:
        figures = measure(Path(tmp), args.entries, args.size, args.runs)
    before, now = figures["before"], figures["now"]
    print(f"{args.entries} entries of {args.size} B, median of {args.runs} runs, in {parent}")
    print("variant   wall us/entry   cpu us/entry   syncs/run")
    for name, f in figures.items():
        print(
            f"{name:<8}  {f['wall_us_per_entry']:>13.1f}  {f['cpu_us_per_entry']:>13.1f}"
            f"  {f['syncs_per_run']:>10.0f}"
        )
    print(
        f"now/before: wall {now['wall_us_per_entry'] / before['wall_us_per_entry']:.3f}, "
        f"cpu {now['cpu_us_per_entry'] / before['cpu_us_per_entry']:.3f}"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
