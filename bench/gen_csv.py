"""Generate a large dubbing CSV and measure how fast and lean ``load_job`` reads it.

    .venv/bin/python bench/gen_csv.py --rows 100000

Time is measured without tracemalloc (it slows allocation down several times); peak memory in
a second load under tracemalloc.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
import tracemalloc
from pathlib import Path

from pipeline.manifest import load_job

VOICES = ("local-zh-female", "local-zh-male", "local-en-female", "local-en-male")
EMOTIONS = ("", "happy", "sad", "neutral", "excited")
TEXTS = (
    "火车开动了，窗外的灯一盏一盏向后退去。",
    "Platform four, the last train to the coast.",
    "I missed this view.\nI didn't know how much.",
    "等等，我的护照呢？在你口袋里，就在你放的地方。",
)


def generate(path: Path, rows: int, rows_per_chapter: int = 500) -> None:
    """Write ``rows`` rows: chapters of ``rows_per_chapter``, voices and emotions in turn."""
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["chapter", "id", "title", "voice_id", "emotion", "speed", "text"])
        for i in range(rows):
            chapter = i // rows_per_chapter
            title = f"Scene {chapter + 1}" if i % rows_per_chapter == 0 else ""
            speed = ("", "1.1", "0.9")[i % 3]
            text = f"{TEXTS[i % len(TEXTS)]} ({i})"
            out.writerow(
                [
                    f"scene-{chapter:04d}",
                    f"r{i}",
                    title,
                    VOICES[i % 4],
                    EMOTIONS[i % 5],
                    speed,
                    text,
                ]
            )


def measure(path: Path) -> tuple[float, int, int, int]:
    """(seconds to load, bytes the Job keeps, peak traced bytes while loading, lines)."""
    started = time.perf_counter()
    job = load_job(path)
    seconds = time.perf_counter() - started
    lines = sum(len(c.lines) for c in job.chapters)
    del job
    tracemalloc.start()
    job = load_job(path)
    kept, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert sum(len(c.lines) for c in job.chapters) == lines
    return seconds, kept, peak, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="write the CSV here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = args.keep or Path(folder) / "big.csv"
        generate(path, args.rows)
        size = path.stat().st_size
        seconds, kept, peak, lines = measure(path)
    print(
        f"{lines} lines from a {size / 1e6:.1f} MB CSV: loaded in {seconds:.2f} s; "
        f"the Job holds {kept / 1e6:.1f} MB, peak {peak / 1e6:.1f} MB traced "
        f"({peak / size:.1f}x the file)"
    )


if __name__ == "__main__":
    main()
