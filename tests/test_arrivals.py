"""Answers measured as they arrive (pipeline/arrivals.py): which chapters, how many at once,
and a stop."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from helpers import RATE, make_plan, run_plan, texts, write_job

import pipeline.arrivals as arrivals
from pipeline.arrivals import ArrivalMeter
from pipeline.audio import procs
from pipeline.audio.control import FinishCancelled
from pipeline.finishing import ChapterState
from pipeline.localserver import LocalServer
from pipeline.runner import OutputOptions

MEASURED = OutputOptions(format="mp3", loudness_lufs=-18.0)


def _states(directory: Path, fmt: str, chapters: dict[str, int]) -> list[ChapterState]:
    directory.mkdir(parents=True, exist_ok=True)
    job = write_job(directory, {cid: texts(n, cid) for cid, n in chapters.items()}, fmt=fmt)
    return [
        ChapterState(i, c, [None] * len(c.chunks), len(c.chunks))
        for i, c in enumerate(make_plan(job).chapters)
    ]


def _meter(
    directory: Path,
    monkeypatch: pytest.MonkeyPatch,
    chunks: int = 8,
    stop: threading.Event | None = None,
) -> ArrivalMeter:
    """A meter that has chosen one long mp3 chapter of ``chunks`` lines, measured to -18 LUFS."""
    monkeypatch.setattr(arrivals, "LONG_CHAPTER_BYTES", 200)
    meter = ArrivalMeter(stop or threading.Event())
    assert meter.choose(_states(directory, "mp3", {"long": chunks}), MEASURED)
    return meter


@pytest.mark.parametrize(
    ("fmt", "output", "wanted"),
    [
        ("mp3", MEASURED, {0}),  # a loudness target: decoded, and long
        ("wav", OutputOptions(format="mp3"), {0}),  # another format: decoded
        ("mp3", OutputOptions(), set()),  # joined as it is: nothing to measure
        ("mp3", OutputOptions(format="opus", loudness_lufs=-18.0), set()),  # not on the cores
        ("mp3", OutputOptions(format="mp3", loudness_lufs=-18.0, clips=True), set()),  # dubbing
    ],
)
def test_only_long_decoded_mp3_chapters_still_to_synthesize_are_measured(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fmt: str,
    output: OutputOptions,
    wanted: set[int],
) -> None:
    monkeypatch.setattr(arrivals, "LONG_CHAPTER_BYTES", 200)
    states = _states(tmp_path, fmt, {"long": 8, "short": 2, "cached": 8})
    states[2].remaining = 0  # all in the cache: kept, or rebuilt without waiting for anything
    meter = ArrivalMeter(threading.Event())
    assert meter.choose(states, output) == bool(wanted)
    assert set(meter._wanted) == wanted


def _tone_mp3(path: Path, seconds: float) -> Path:
    samples = (0.2 * np.sin(np.arange(round(seconds * RATE)) * 0.1)).astype(np.float32)
    with av.open(str(path), "w", format="mp3") as out:
        stream = out.add_stream("libmp3lame", rate=RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="flt", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = RATE, 0, Fraction(1, RATE)
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record how many measures are with the workers at each submission."""
    outstanding, seen = [0], []
    lock = threading.Lock()
    real = procs.submit_if_ready

    def done(_: Future[Any]) -> None:
        with lock:
            outstanding[0] -= 1

    def submit(fn: Any, *args: Any) -> Future[Any] | None:
        future = real(fn, *args)
        if future is not None:
            with lock:
                outstanding[0] += 1
                seen.append(outstanding[0])
            future.add_done_callback(done)
        return future

    monkeypatch.setattr(procs, "submit_if_ready", submit)
    return seen


def test_a_few_measures_at_a_time_and_a_chapter_gets_all_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    meter = _meter(tmp_path, monkeypatch, 16)
    seen = _counting(monkeypatch)
    paths = [_tone_mp3(tmp_path / f"a{k}.mp3", 1.0 + k / 10) for k in range(16)]
    meter.add(0, 0, paths[0])  # before the workers run: queued
    meter.start()
    for k in range(1, 16):
        meter.add(0, k, paths[k])
    measures = meter.measures(0, 16, None)
    assert measures is not None and len(seen) == 16
    assert max(seen) <= arrivals._IN_FLIGHT
    for k, m in enumerate(measures):
        assert m is not None and m.path == paths[k]
        assert m.content == round((1.0 + k / 10) * RATE)
    assert meter.measures(1, 3, None) is None  # not a measured chapter


def test_after_a_stop_nothing_more_is_sent_and_collecting_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stop = threading.Event()
    meter = _meter(tmp_path, monkeypatch, stop=stop)
    seen = _counting(monkeypatch)
    meter.start()
    stop.set()
    for k in range(8):
        meter.add(0, k, _tone_mp3(tmp_path / f"b{k}.mp3", 1.0))
    assert seen == []
    with pytest.raises(FinishCancelled):
        meter.measures(0, 8, stop)


def test_without_the_workers_the_chapter_measures_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(procs, "_failed", True)  # the processes failed earlier in the run
    meter = _meter(tmp_path, monkeypatch)
    meter.start()
    for k in range(8):
        meter.add(0, k, _tone_mp3(tmp_path / f"c{k}.mp3", 1.0))
    assert meter.measures(0, 8, None) == [None] * 8  # at once: nothing to wait for


def _no_semaphores() -> None:
    raise OSError(38, "Function not implemented")


@pytest.mark.anyio
async def test_a_run_whose_workers_cannot_be_made_still_finishes_its_chapters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local_server: LocalServer
) -> None:
    procs.stop_workers()
    monkeypatch.setattr(procs, "_shared_pool", _no_semaphores)  # no /dev/shm, say
    monkeypatch.setattr(arrivals, "LONG_CHAPTER_BYTES", 100)
    job = write_job(tmp_path, {"long": texts(12, "delta")}, fmt="mp3")
    report = await run_plan(make_plan(job), local_server, tmp_path / "out", output=MEASURED)
    assert report.status == "ok" and (tmp_path / "out" / "long.mp3").stat().st_size > 0


@pytest.mark.parametrize("why", ["failed before", "one core"])
def test_start_makes_no_worker_where_they_are_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, why: str
) -> None:
    procs.stop_workers()
    if why == "one core":
        monkeypatch.setattr(procs, "workers", lambda: 1)
    else:
        monkeypatch.setattr(procs, "_failed", True)
    _meter(tmp_path, monkeypatch).start()
    assert procs.worker_pids() == []


def test_measures_that_come_after_their_chapter_are_not_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    meter = _meter(tmp_path, monkeypatch)
    seen = _counting(monkeypatch)
    for k in range(8):  # all in before the workers' start had begun
        meter.add(0, k, _tone_mp3(tmp_path / f"d{k}.mp3", 1.0))
    assert meter.measures(0, 8, None) == [None] * 8  # the chapter measures itself
    meter.start()
    assert seen == [] and meter._futures == {}


def test_a_closed_meter_keeps_no_one_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    meter = _meter(tmp_path, monkeypatch)
    meter._starting = True  # the start was handed to a thread that never ran: the run ended
    meter.add(0, 0, _tone_mp3(tmp_path / "e0.mp3", 1.0))
    meter.close()
    assert meter.measures(0, 8, None) == [None] * 8
