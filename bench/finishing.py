"""Finishing a long chapter with a loudness target: the old two-pass loudnorm against today's.

    .venv/bin/python -m bench.finishing --minutes 45      # the issue's case
    .venv/bin/python -m bench.finishing --quick           # 3 minutes, a smoke run
    .venv/bin/python -m bench.finishing --clock cpu       # the table's clock (both are kept)

Every stage is timed on both clocks in the same run: wall seconds, and CPU seconds of the
process and its finishing worker processes (every thread counted; on a shared machine the
figure to quote). The load average
before and after is printed with them: wall figures mean little when it is above the cores.
Three paths: ``old`` (two-pass loudnorm), ``previous`` (one thread: ebur128, limiter, LAME
quality 5) and ``new`` (today's: pieces in a worker process per core, each part decoded
once, LAME quality 7; the m4b's AAC in pieces too). The new chapter is timed with its worker
processes running and every part already measured, as in a run, which starts the workers at
its first answer and measures each answer in them as it comes in (``pipeline/arrivals.py``);
both are timed apart (``workers_start``, ``arrivals``).

Speech comes from the local server's eSpeak engine: chunks of two Holmes and Sanguo chapters
in English and Chinese voices at several speeds (real loudness variation), encoded as the
API's mp3 at 24 kHz, then listed over and over up to the chapter's length. Both paths finish
the same chapter to mp3 at -18 LUFS and then build a one-chapter m4b from it, stage by stage
and in the same run; the outputs' loudness and true peak are measured by the NumPy reference
(pipeline/audio/loudness.py), not by the meter either path used. ``--threads`` also times
two chapters finished one after the other and then in two threads at once.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any

import av
import av.filter
import numpy as np

from bench.common import CORPUS_VARIABLE, TEXTS, machine
from pipeline.audio import ChapterSpec, Part, assemble_chapter, build_book
from pipeline.audio.avutil import captured_log
from pipeline.audio.control import Watch
from pipeline.audio.energy import gated_loudness
from pipeline.audio.limiter import LevelProfile, TruePeakLimiter, compensated_gain_db
from pipeline.audio.loudness import integrated_loudness, true_peak_dbtp
from pipeline.audio.mp3cores import measure_group
from pipeline.audio.partmeasure import joined, measure_part
from pipeline.audio.pieces import groups, workers
from pipeline.audio.process import (
    chapter_blocks,
    encode,
    limited,
    loudness_gain_db,
    measure_loudness,
)
from pipeline.audio.procs import (
    run_in_processes,
    stop_workers,
    submit_if_ready,
    wait_for_workers,
    worker_pids,
)

RATE = 24000
TARGET = -18.0
# The project's own texts by default; $TTS_CORPUS_DIR (with holmes_01.txt and sanguo_01.txt)
# for longer, varied speech.
VOICES = (("en_lighthouse.txt", "local-en-male"), ("zh_teahouse.txt", "local-zh-female"))
CORPUS_VOICES = (("holmes_01.txt", "local-en-male"), ("sanguo_01.txt", "local-zh-female"))
SPEEDS = (0.9, 1.0, 1.2)


def make_parts(directory: Path, count: int, corpus: Path) -> list[Path]:
    """``count`` espeak chunks as API mp3 answers; made once per directory."""
    from pipeline.chunking import split_text
    from pipeline.localserver.encode import encode
    from pipeline.localserver.espeak import EspeakEngine
    from pipeline.manifest import split_paragraphs

    directory.mkdir(parents=True, exist_ok=True)
    existing = sorted(directory.glob("part*.mp3"))
    if len(existing) >= count:
        return existing[:count]
    per_voice = []
    voices = VOICES if corpus == TEXTS else CORPUS_VOICES
    for name, voice in voices:
        text = (corpus / name).read_text(encoding="utf-8")
        chunks = [c for p in split_paragraphs(text)[1:] for c in split_text(p, 240)]
        per_voice.append([(c, voice) for c in chunks[: count // 2 + 1]])
    engine = EspeakEngine()
    paths = []
    for i in range(count):
        pool = per_voice[i % 2]
        text, voice = pool[(i // 2) % len(pool)]  # short texts are repeated
        samples = engine.synthesize(text, voice, speed=SPEEDS[i % 3], sample_rate=RATE)
        path = directory / f"part{i:03d}.mp3"
        path.write_bytes(encode(samples, RATE, "mp3"))
        paths.append(path)
    return paths


def chapter_spec(parts: list[Path], minutes: float, out: Path) -> ChapterSpec:
    lengths = []
    for path in parts:
        with av.open(str(path)) as c:
            lengths.append(float(c.duration or 0) / av.time_base)
    listed, total, i = [], 0.0, 0
    while total < minutes * 60:
        listed.append(Part(parts[i % len(parts)], f"chunk {i}", f"line{i}", True, 400))
        total += lengths[i % len(parts)] + 0.4
        i += 1
    return ChapterSpec(tuple(listed), "mp3", RATE, out, output_format="mp3", loudness_lufs=TARGET)


# --- the old path, as it was before this change (two-pass loudnorm, frame by frame) --------


def _old_frames(spec: ChapterSpec) -> Iterator[av.AudioFrame]:
    for part in spec.parts:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
        with av.open(str(part.path)) as c:
            for frame in c.decode(audio=0):
                frame.pts = None
                yield from resampler.resample(frame)
            yield from resampler.resample(None)
        samples = round(part.pause_after_ms * RATE / 1000)
        zeros = np.zeros((1, samples), dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(zeros, format="flt", layout="mono")
        frame.sample_rate = RATE
        yield frame


def _old_chain(frames: Iterator[av.AudioFrame], filters: list[tuple[str, str]]) -> Any:
    graph = av.filter.Graph()
    node = graph.add_abuffer(format="flt", sample_rate=RATE, layout="mono", time_base=None)
    for name, args in filters:
        nxt = graph.add(name, args)
        node.link_to(nxt)
        node = nxt
    node.link_to(graph.add("abuffersink"))
    graph.configure()

    def run() -> Iterator[av.AudioFrame]:
        pts = 0
        for frame in itertools.chain(frames, [None]):
            if frame is not None:
                frame.pts, frame.time_base = pts, Fraction(1, RATE)
                pts += frame.samples
            graph.push(frame)
            while True:
                try:
                    yield graph.pull()
                except (av.BlockingIOError, av.EOFError):
                    break

    return graph, run()


def old_measure(spec: ChapterSpec) -> dict[str, float]:
    args = f"I={TARGET}:TP=-1.5:LRA=50:print_format=json"
    graph, frames = _old_chain(_old_frames(spec), [("loudnorm", args)])
    for _ in frames:
        pass
    with captured_log() as logs:
        del graph, frames
    text = " ".join(line[2] for line in logs if line[1] == "loudnorm")
    values: dict[str, str] = json.JSONDecoder().raw_decode(text, text.find("{"))[0]
    return {k: float(v) for k, v in values.items() if k.startswith(("input", "target"))}


def old_normalised(spec: ChapterSpec, m: dict[str, float]) -> Iterator[av.AudioFrame]:
    args = (
        f"I={TARGET}:TP=-1.5:LRA=50:print_format=none:measured_I={m['input_i']}"
        f":measured_TP={m['input_tp']}:measured_LRA={m['input_lra']}"
        f":measured_thresh={m['input_thresh']}:offset={m['target_offset']}:linear=true"
    )
    _, frames = _old_chain(_old_frames(spec), [("loudnorm", args), ("aresample", str(RATE))])
    yield from frames


def old_encode(frames: Iterator[av.AudioFrame], path: Path, container: str, codec: str) -> None:
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=RATE, layout="mono")
        stream.bit_rate = 64_000 if codec == "libmp3lame" else 96_000
        pts = 0
        for frame in frames:
            frame.pts, frame.time_base, frame.sample_rate = pts, Fraction(1, RATE), RATE
            pts += frame.samples
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def old_book(chapter: Path, out: Path) -> None:
    def frames() -> Iterator[av.AudioFrame]:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
        with av.open(str(chapter)) as c:
            for frame in c.decode(audio=0):
                frame.pts = None
                yield from resampler.resample(frame)

    old_encode(frames(), out, "ipod", "aac")


# --- timing ---------------------------------------------------------------------------------


def cpu_seconds() -> float:
    """CPU seconds of this process (every thread) and of the finishing worker processes."""
    total = time.process_time()
    tick = os.sysconf("SC_CLK_TCK")
    for pid in worker_pids():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


CLOCKS = {"wall": time.perf_counter, "cpu": cpu_seconds}


def _timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process and its workers, result) of ``fn``."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = fn()
    return time.perf_counter() - wall, cpu_seconds() - cpu, result


class Stages:
    """Each stage's seconds on both clocks."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        self.wall[name], self.cpu[name], result = _timed(fn)
        return result

    def derive(self, name: str, whole: str, *parts: str) -> None:
        for clock in (self.wall, self.cpu):
            clock[name] = max(0.0, clock[whole] - sum(clock[p] for p in parts))


def _drain(items: Iterator[Any]) -> int:
    return sum(1 for _ in items)


def time_old(spec: ChapterSpec, work: Path) -> dict[str, Any]:
    chapter, book = work / "old.mp3", work / "old.m4b"
    st = Stages()
    st.run("decode", lambda: _drain(_old_frames(spec)))
    measured = st.run("measure", lambda: old_measure(spec))
    st.run("gain+limit", lambda: _drain(old_normalised(spec, measured)))
    frames = partial(old_normalised, spec, measured)
    st.run("pass2", lambda: old_encode(frames(), chapter, "mp3", "libmp3lame"))
    st.derive("encode", "pass2", "gain+limit")
    for clock in (st.wall, st.cpu):
        clock["chapter"] = clock["measure"] + clock.pop("pass2")
    st.run("m4b", lambda: old_book(chapter, book))
    return {"stages": st, "chapter": chapter, "book": book}


def previous_chapter(spec: ChapterSpec, path: Path) -> None:
    """The path before chapters were cut into pieces: one thread, ebur128, LAME quality 5."""
    watch = Watch(None, None)
    profile = LevelProfile(RATE)
    blocks = chapter_blocks(spec, RATE, "mono", None, watch)
    measured = measure_loudness(blocks, RATE, "mono", profile)
    gain = compensated_gain_db(loudness_gain_db(TARGET, measured) or 0.0, profile)
    blocks = chapter_blocks(spec, RATE, "mono", None, watch)
    source = limited(blocks, TruePeakLimiter(RATE, 1, gain))
    encode(source, path, "mp3", RATE, "mono", {})


def time_previous(spec: ChapterSpec, work: Path) -> dict[str, Any]:
    chapter = work / "previous.mp3"
    st = Stages()
    st.run("chapter", lambda: previous_chapter(spec, chapter))
    return {"stages": st, "chapter": chapter}


def measured_on_arrival(spec: ChapterSpec) -> list[Any]:
    """Every part measured in the worker processes, one job each, as a run's answers are."""
    futures = [
        submit_if_ready(measure_part, part.path, "mp3", RATE, RATE, None, bool(spec.subtitles))
        for part in spec.parts
    ]
    return [f.result() if f is not None else None for f in futures]


def time_new(spec: ChapterSpec, work: Path) -> dict[str, Any]:
    from dataclasses import replace

    chapter, book = work / "new.mp3", work / "new.m4b"
    spec = replace(spec, out_path=chapter)
    watch = Watch(None, None)
    st = Stages()
    st.run("decode", lambda: _drain(chapter_blocks(spec, RATE, "mono", None, watch)))

    def measure() -> list[Any]:
        jobs = [
            partial(measure_group, spec, group, RATE, "mono", False, None)
            for group in groups(spec, workers())
        ]
        return run_in_processes(jobs, watch)  # as the chapter's own first pass does

    measured = st.run("measure", measure)
    steps = joined(spec, [part for m in measured for part in m.parts], RATE).steps
    gain = loudness_gain_db(TARGET, gated_loudness(steps, RATE // 10)) or 0.0
    limiter = TruePeakLimiter(RATE, 1, gain)
    blocks = chapter_blocks(spec, RATE, "mono", None, watch)
    count = st.run("gain+limit", lambda: sum(b.shape[1] for b in limited(blocks, limiter)))
    # A run starts the workers at its first answer (runner._start_workers_early), so their
    # start overlaps synthesis: timed apart, from none, then the chapter with them running.
    stop_workers()
    st.run("workers", lambda: wait_for_workers(watch))
    # A run measures each answer in the workers as it comes in (pipeline/arrivals.py), while
    # synthesis goes on; timed apart too, then the chapter with those measures.
    measures = st.run("arrivals", lambda: measured_on_arrival(spec))
    st.run("chapter", lambda: assemble_chapter(spec, measures=measures))
    st.derive("encode", "chapter", "measure")
    st.run("m4b", lambda: build_book([(chapter, "One")], book))
    share = limiter.reduced_samples / max(1, count)
    return {"stages": st, "chapter": chapter, "book": book, "limited_share": share}


def file_levels(path: Path) -> dict[str, float]:
    blocks = []
    with av.open(str(path)) as c:
        rate = c.streams.audio[0].codec_context.sample_rate
        for frame in c.decode(audio=0):
            blocks.append(frame.to_ndarray().reshape(-1))
    samples = np.concatenate(blocks)
    return {
        "seconds": round(len(samples) / rate, 1),
        "lufs": round(integrated_loudness(samples, rate), 2),
        "dbtp": round(true_peak_dbtp(samples), 2),
    }


def time_threads(spec: ChapterSpec, work: Path) -> dict[str, float]:
    """Two chapters one after the other, then the same two in two threads at once (wall)."""
    from dataclasses import replace

    specs = [replace(spec, out_path=work / f"thread{i}.mp3") for i in range(2)]
    serial, _, _ = _timed(lambda: [assemble_chapter(s) for s in specs])

    def parallel() -> None:
        threads = [threading.Thread(target=assemble_chapter, args=(s,)) for s in specs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    both, _, _ = _timed(parallel)
    return {"serial_s": round(serial, 2), "threads_s": round(both, 2), "speedup": serial / both}


STAGES = ("decode", "measure", "gain+limit", "encode", "chapter", "m4b")


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _rounded(stages: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 2) for k, v in stages.items()}


def run_finishing(
    minutes: float, count: int, work: Path, corpus: Path, *, clock: str, threads: bool
) -> dict[str, Any]:
    """The paths on one chapter of ``minutes``, side by side; the summary ``make bench`` keeps.

    ``old`` and ``new`` hold the stages on ``clock`` (what the report's table shows);
    ``wall_s`` and ``cpu_s`` both clocks for every path, ``load`` the load average around it.
    """
    parts = make_parts(work / "parts", count, corpus)
    spec = chapter_spec(parts, minutes, work / "chapter.mp3")
    load_before = _load()
    old = time_old(spec, work)
    previous = time_previous(spec, work)
    new = time_new(spec, work)
    load_after = _load()
    levels = {}
    for name, result in (("old", old), ("previous", previous), ("new", new)):
        levels[name] = {"chapter": file_levels(result["chapter"])}
        if "book" in result:
            levels[name]["m4b"] = file_levels(result["book"])
    audio_s = levels["new"]["chapter"]["seconds"]
    paths = {"old": old, "previous": previous, "new": new}
    summary: dict[str, Any] = {
        "machine": machine(),
        "minutes": minutes,
        "parts": len(spec.parts),
        "audio_s": audio_s,
        "clock": clock,
        "workers": workers(),
        "old": _rounded(getattr(old["stages"], clock)),
        "new": _rounded(getattr(new["stages"], clock)),
        "wall_s": {name: _rounded(r["stages"].wall) for name, r in paths.items()},
        "cpu_s": {name: _rounded(r["stages"].cpu) for name, r in paths.items()},
        "load": {"before": load_before, "after": load_after},
        "levels": levels,
        "limited_share": new["limited_share"],
        "workers_start": {
            "wall_s": round(new["stages"].wall["workers"], 2),
            "cpu_s": round(new["stages"].cpu["workers"], 2),
        },
        "arrivals": {
            "wall_s": round(new["stages"].wall["arrivals"], 2),
            "cpu_s": round(new["stages"].cpu["arrivals"], 2),
        },
    }
    if threads:
        summary["threads"] = time_threads(spec, work)
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    audio_s, wall, cpu = summary["audio_s"], summary["wall_s"], summary["cpu_s"]
    m = summary["machine"]
    print(
        f"{m['cpu']}, nproc {m['nproc']}, {summary['workers']} finishing processes; chapter of "
        f"{summary['minutes']:g} min ({audio_s:g} s), {summary['parts']} parts, mp3 at "
        f"{TARGET:g} LUFS, then a one-chapter m4b; load average (1, 5, 15 min) "
        f"{summary['load']['before']} before, {summary['load']['after']} after"
    )
    print("x: real-time factor; per core: audio seconds per CPU second (threads and workers)")
    head = ("stage", "old wall", "old cpu", "new wall", "new cpu", "new x", "x/core", "cpu old/new")
    print("{:12} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>11}".format(*head))
    for stage in STAGES:
        ow, oc = wall["old"][stage], cpu["old"][stage]
        nw, nc = max(wall["new"][stage], 1e-3), max(cpu["new"][stage], 1e-3)
        print(
            f"{stage:12} {ow:9.2f} {oc:9.2f} {nw:9.2f} {nc:9.2f} {audio_s / nw:7.0f} "
            f"{audio_s / nc:7.0f} {oc / nc:11.1f}"
        )
    for name in ("old", "previous", "new"):
        c = cpu[name]["chapter"] + cpu[name].get("m4b", 0.0)
        w = wall[name]["chapter"] + wall[name].get("m4b", 0.0)
        what = "chapter + m4b" if "m4b" in cpu[name] else "chapter"
        print(
            f"{name:9} {what:14} wall {w:8.2f} s ({audio_s / w:4.0f}x), cpu {c:8.2f} s "
            f"({audio_s / c:4.0f}x per core); chapter alone wall {wall[name]['chapter']:.2f} s "
            f"({audio_s / wall[name]['chapter']:.0f}x), cpu {cpu[name]['chapter']:.2f} s"
        )
    for name, levels in summary["levels"].items():
        print(f"{name}: {levels}")
    for key, what in (("workers_start", "the worker processes' start"),
                      ("arrivals", "each part measured on its own, one job a part")):
        print(
            f"new: {what} (in a run, during synthesis): {summary[key]['wall_s']} s wall, "
            f"{summary[key]['cpu_s']} CPU-s"
        )
    print(f"new: the limiter turned down {summary['limited_share']:.2%} of the samples")
    if "threads" in summary:
        t = summary["threads"]
        print(
            f"two chapters: {t['serial_s']} s one after the other, {t['threads_s']} s in two "
            f"threads: {t['speedup']:.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=45.0)
    parser.add_argument("--quick", action="store_true", help="3 minutes from 12 chunks")
    parser.add_argument("--parts", type=int, default=40, help="distinct espeak chunks")
    parser.add_argument("--dir", default="out/bench-finishing", help="parts and outputs")
    parser.add_argument(
        "--clock", choices=sorted(CLOCKS), default="wall", help="cpu on a shared machine"
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        default=Path(os.environ[CORPUS_VARIABLE]) if os.environ.get(CORPUS_VARIABLE) else TEXTS,
        help="the texts to speak",
    )
    parser.add_argument("--threads", action="store_true", help="also time 2 chapters in 2 threads")
    args = parser.parse_args()
    minutes, count = (3.0, 12) if args.quick else (args.minutes, args.parts)
    summary = run_finishing(
        minutes, count, Path(args.dir), args.corpus, clock=args.clock, threads=args.threads
    )
    print_summary(summary)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
