"""Peak memory of assembling a 10-hour chapter (3,600 parts of 10 s), per format and path.

    .venv/bin/python bench/assembly_memory.py [--hours 10] [--formats mp3,wav] [--dir DIR]

Parts are generated once with PyAV (six tones, 10 s each, 24 kHz mono) and the chapter
lists them 3,600 times over, cycling through them: what memory sees is the same as 3,600
distinct files. Each assembly runs in a fresh subprocess that reports its own peak RSS
(resource.getrusage ru_maxrss), so one run's memory cannot hide in another's.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

RATE = 24000
PART_S = 10
TONES = (300.0, 500.0, 700.0, 900.0, 1100.0, 1300.0)
EXT = {"mp3": "mp3", "wav": "wav", "pcm": "pcm", "ogg_opus": "opus"}
CODEC = {"mp3": ("mp3", "libmp3lame"), "wav": ("wav", "pcm_s16le"), "ogg_opus": ("ogg", "libopus")}


def make_part(path: Path, fmt: str, freq: float) -> None:
    t = np.arange(RATE * PART_S) / RATE
    samples = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    if fmt == "pcm":
        path.write_bytes((samples * 32767).astype("<i2").tobytes())
        return
    container, codec = CODEC[fmt]
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=RATE, layout="mono")
        for i in range(0, len(samples), 4800):
            frame = av.AudioFrame.from_ndarray(
                samples[None, i : i + 4800], format="flt", layout="mono"
            )
            frame.sample_rate, frame.pts, frame.time_base = RATE, i, Fraction(1, RATE)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def child(args: argparse.Namespace) -> None:
    from pipeline.audio import ChapterSpec, Part, assemble_chapter

    parts_dir = Path(args.dir)
    files = sorted(parts_dir.glob(f"part*.{EXT[args.fmt]}"))
    count = round(args.hours * 3600 / PART_S)
    parts = tuple(
        Part(files[i % len(files)], f"chunk {i}", f"line{i}", True, 300) for i in range(count)
    )
    out = parts_dir / f"chapter.{args.output or EXT[args.fmt]}"
    spec = ChapterSpec(
        parts,
        args.fmt,
        RATE,
        out,
        output_format=args.output,
        loudness_lufs=args.lufs,
        subtitles=("srt",),
    )
    start = time.monotonic()
    result = assemble_chapter(spec)
    elapsed = time.monotonic() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "format": args.fmt,
                "output": args.output or args.fmt,
                "loudness": args.lufs,
                "parts": count,
                "audio_hours": round(result.duration_s / 3600, 3),
                "file_mb": round(out.stat().st_size / 1e6, 1),
                "seconds": round(elapsed, 1),
                "peak_rss_mb": round(peak_kib / 1024, 1),
            }
        )
    )
    out.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=10.0)
    parser.add_argument("--formats", default="mp3,wav")
    parser.add_argument(
        "--processing",
        action="store_true",
        help="also time the decoding path (wav parts to mp3, -16 LUFS)",
    )
    parser.add_argument("--dir", default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fmt", help=argparse.SUPPRESS)
    parser.add_argument("--output", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--lufs", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    base = Path(args.dir or tempfile.mkdtemp(prefix="assembly-bench-"))
    runs: list[tuple[str, list[str]]] = [(f, []) for f in args.formats.split(",")]
    if args.processing:
        runs.append(("wav", ["--output", "mp3", "--lufs", "-16"]))
    for fmt, extra in runs:
        directory = base / fmt
        directory.mkdir(parents=True, exist_ok=True)
        for i, freq in enumerate(TONES):
            path = directory / f"part{i}.{EXT[fmt]}"
            if not path.exists():
                make_part(path, fmt, freq)
        command = [
            sys.executable,
            __file__,
            "--child",
            "--fmt",
            fmt,
            "--dir",
            str(directory),
            "--hours",
            str(args.hours),
            *extra,
        ]
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
