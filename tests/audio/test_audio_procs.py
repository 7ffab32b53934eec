"""A long mp3 chapter finished in worker processes: the same bytes, a stop, a dead worker."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from test_audio_support import calls, tone, write_part

from pipeline.audio import ChapterSpec, Part, assemble_chapter, mp3cores, procs, spill
from pipeline.audio.control import FinishCancelled, Watch
from pipeline.audio.pieces import Feedback
from pipeline.audio.spill import SpillMap

RATE = 24000


def _spec(tmp_path: Path, parts: int = 24) -> ChapterSpec:
    a = write_part(tmp_path / "a.mp3", "mp3", RATE, tone(440.0, 6.5, RATE))
    b = write_part(tmp_path / "b.mp3", "mp3", RATE, tone(660.0, 7.5, RATE, amplitude=0.1))
    listed = tuple(Part(a if i % 2 else b, f"chunk {i}.", f"l{i}", True, 300) for i in range(parts))
    return ChapterSpec(
        listed, "mp3", RATE, tmp_path / "out" / "chapter.mp3", output_format="mp3",
        loudness_lufs=-18.0, subtitles=("srt",),
    )  # fmt: skip


def _finish(spec: ChapterSpec, name: str, processes: bool, mp: pytest.MonkeyPatch) -> bytes:
    mp.setattr(procs, "PROCESSES_FROM_BYTES", 0 if processes else 1 << 60)
    mp.setattr(mp3cores, "workers", lambda: 2)
    mp.setattr(mp3cores, "_LEAST_PIECE_S", 5.0)
    out = spec.out_path.with_name(name)
    result = assemble_chapter(replace(spec, out_path=out))
    return result.path.read_bytes() + out.with_suffix(".srt").read_bytes()


def test_processes_write_the_same_chapter_as_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec(tmp_path)
    used = calls(monkeypatch)
    threads = _finish(spec, "threads.mp3", False, monkeypatch)
    assert used == ["run_on_cores", "run_on_cores"]
    used.clear()
    processes = _finish(spec, "processes.mp3", True, monkeypatch)
    assert used == ["run_in_processes", "run_in_processes"]
    assert processes == threads
    # The spill files are gone with the temp file: only the outputs are left.
    names = sorted(p.name for p in spec.out_path.parent.iterdir())
    assert names == ["processes.mp3", "processes.srt", "threads.mp3", "threads.srt"]


@pytest.mark.parametrize("why", ["unwritable", "disk nearly full"])
def test_a_chapter_whose_spill_is_dropped_is_decoded_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, why: str
) -> None:
    spec = _spec(tmp_path, 8)
    maps: list[SpillMap] = []
    real_of = SpillMap.of

    def recorded(*args, **kwargs):  # type: ignore[no-untyped-def]
        maps.append(real_of(*args, **kwargs))
        return maps[-1]

    monkeypatch.setattr(mp3cores.SpillMap, "of", recorded)
    normal = _finish(spec, "normal.mp3", False, monkeypatch)
    assert all(where is not None for where in maps[-1].where)

    def nowhere(beside: Path, count: int) -> list[Path]:
        return [tmp_path / "missing" / f"spill{i}" for i in range(count)]

    if why == "unwritable":
        monkeypatch.setattr(mp3cores, "new_spills", nowhere)
    else:
        monkeypatch.setattr(spill, "_RESERVE", 1 << 62)
    assert _finish(spec, "decoded.mp3", False, monkeypatch) == normal
    assert all(where is None for where in maps[-1].where)


def test_a_stop_reaches_the_processes_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec(tmp_path, 200)  # about 24 minutes
    monkeypatch.setattr(procs, "PROCESSES_FROM_BYTES", 0)
    stop = threading.Event()
    asked_at: list[float] = []

    def progress(done: float) -> None:
        if done > 120 and not stop.is_set():
            asked_at.append(time.monotonic())
            stop.set()

    with pytest.raises(FinishCancelled):
        assemble_chapter(spec, progress=progress, cancel=stop)
    assert time.monotonic() - asked_at[0] < 0.5
    assert list(spec.out_path.parent.iterdir()) == []


def _dies(feedback: Feedback) -> None:
    os._exit(3)


def _counts(seconds: float, feedback: Feedback) -> float:
    feedback.advance(seconds)
    return seconds


def test_a_worker_that_dies_is_reported_and_the_next_call_gets_new_ones() -> None:
    with pytest.raises(procs.ProcessesFailed, match="ended unexpectedly"):
        procs.run_in_processes([_dies, partial(_counts, 1.0)], Watch(None, None))
    assert procs.run_in_processes([partial(_counts, 2.0)], Watch(None, None)) == [2.0]


def test_when_processes_fail_the_chapter_is_finished_in_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    spec = _spec(tmp_path, 8)
    expected = _finish(spec, "expected.mp3", False, monkeypatch)

    def no_pool() -> None:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(procs, "_shared_pool", no_pool)
    monkeypatch.setattr(procs, "_failed", False)
    seen: list[float] = []
    monkeypatch.setattr(procs, "PROCESSES_FROM_BYTES", 0)
    out = spec.out_path.with_name("fallback.mp3")
    with caplog.at_level(logging.WARNING, logger="pipeline.audio.procs"):
        assemble_chapter(replace(spec, out_path=out), progress=seen.append)
    assert out.read_bytes() + out.with_suffix(".srt").read_bytes() == expected
    assert "Too many open files" in caplog.text and "threads" in caplog.text
    assert procs._failed and seen == sorted(seen)



def test_a_spill_that_cannot_be_made_is_none_and_the_others_are_made(tmp_path: Path) -> None:
    assert spill.new_spills(tmp_path / "missing" / "chapter.tmp", 2) == [None, None]
    made = spill.new_spills(tmp_path / "chapter.tmp", 2)
    assert all(p is not None and p.exists() and p.stat().st_size == 0 for p in made)
    spill.remove_spills([*made, None])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("blocks", [1, 40])
def test_a_spill_on_a_full_disk_is_dropped_not_raised(blocks: int) -> None:
    # The found case: the last flush failing inside close() (1 block), and a write failing
    # while appending (40 blocks pass the write buffer).
    writer = spill.SpillWriter(Path("/dev/full"))
    for _ in range(blocks):
        writer.append(np.zeros((1, 24000), np.float32))
    assert writer.close() is None


def test_prestart_starts_the_workers_that_the_first_call_then_uses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(procs, "workers", lambda: 2)
    procs.stop_workers()
    procs.prestart()  # returns at once: the workers start in the background
    assert procs._warm is not None
    procs._warm.result(timeout=60)
    started = sorted(procs.worker_pids())
    assert len(started) == 2
    assert procs.run_in_processes([partial(_counts, 1.0)], Watch(None, None)) == [1.0]
    assert sorted(procs.worker_pids()) == started
    procs.prestart()  # already running: nothing new
    assert sorted(procs.worker_pids()) == started


def test_prestart_does_nothing_once_the_processes_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    procs.stop_workers()
    monkeypatch.setattr(procs, "_failed", True)
    procs.prestart()
    assert procs._pool is None and procs.worker_pids() == []


_IDLE_DEATH = """
import os, signal, time
from pipeline.audio import procs
from pipeline.audio.control import Watch

if __name__ == "__main__":
    procs.wait_for_workers(Watch(None, None))
    time.sleep(0.3)
    os.kill(procs.worker_pids()[0], signal.SIGKILL)  # the OOM killer, say
    time.sleep(1.0)
    print("leaving", flush=True)
"""


def test_a_worker_killed_while_idle_does_not_keep_the_program_from_exiting(
    tmp_path: Path,
) -> None:
    # The pool ends the other workers with SIGTERM, and waits for them: they must obey it.
    script = tmp_path / "idle_death.py"
    script.write_text(_IDLE_DEATH, encoding="utf-8")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, str(script)], cwd=root, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(root)},
    )  # fmt: skip
    assert done.returncode == 0 and "leaving" in done.stdout, done.stderr
