"""Finishing under control: progress, cancellation within half a second, threads at once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from test_audio_support import make_parts, tone, write_part

from pipeline.audio import ChapterSpec, Part, assemble_chapter, build_book
from pipeline.audio.control import FinishCancelled

RATE = 16000


def _long_spec(tmp_path: Path, out: str, lufs: float | None, minutes: float) -> ChapterSpec:
    a = write_part(tmp_path / "a.mp3", "mp3", RATE, tone(440.0, 9.5, RATE))
    b = write_part(tmp_path / "b.mp3", "mp3", RATE, tone(660.0, 10.5, RATE, amplitude=0.1))
    count = round(minutes * 60 / 10.3)
    parts = tuple(Part(a if i % 2 else b, f"chunk {i}.", f"l{i}", True, 300) for i in range(count))
    return ChapterSpec(
        parts,
        "mp3",
        RATE,
        tmp_path / "out" / f"chapter.{out}",
        output_format=out,
        loudness_lufs=lufs,
        subtitles=("srt", "vtt"),
    )


@pytest.mark.parametrize(("out", "lufs"), [("mp3", -18.0), ("mp3", None), ("flac", None)])
def test_progress_grows_to_the_chapter_length(tmp_path: Path, out: str, lufs: float | None) -> None:
    spec = _long_spec(tmp_path, out, lufs, 2)
    seen: list[float] = []
    result = assemble_chapter(spec, progress=seen.append)
    assert seen == sorted(seen)
    assert seen[-1] == pytest.approx(result.duration_s, abs=0.05)
    assert len(seen) >= 2


@pytest.mark.parametrize(("out", "lufs"), [("mp3", -18.0), ("mp3", None), ("opus", None)])
def test_cancel_stops_quickly_and_leaves_nothing(
    tmp_path: Path, out: str, lufs: float | None
) -> None:
    spec = _long_spec(tmp_path, out, lufs, 30)
    stop = threading.Event()
    asked_at: list[float] = []

    def progress(done: float) -> None:
        if done > 20 and not stop.is_set():
            asked_at.append(time.monotonic())
            stop.set()

    with pytest.raises(FinishCancelled):
        assemble_chapter(spec, progress=progress, cancel=stop)
    assert time.monotonic() - asked_at[0] < 0.5
    assert list((tmp_path / "out").iterdir()) == []


def test_a_cancel_callable_before_the_start_writes_nothing(tmp_path: Path) -> None:
    spec = _long_spec(tmp_path, "mp3", -18.0, 0.5)
    with pytest.raises(FinishCancelled):
        assemble_chapter(spec, cancel=lambda: True)
    assert not spec.out_path.exists() and not spec.out_path.with_suffix(".srt").exists()


def test_book_cancel_leaves_no_book(tmp_path: Path) -> None:
    chapter = write_part(tmp_path / "c.wav", "wav", RATE, tone(300.0, 60, RATE))
    stop = threading.Event()
    with pytest.raises(FinishCancelled):
        build_book(
            [(chapter, "One"), (chapter, "Two")],
            tmp_path / "b" / "book.m4b",
            progress=lambda done: stop.set() if done > 30 else None,
            cancel=stop,
        )
    assert list((tmp_path / "b").iterdir()) == []


def test_chapters_finished_in_threads_are_those_finished_alone(tmp_path: Path) -> None:
    parts = make_parts(tmp_path, "mp3", RATE, [(3.0, 200), (2.0, 0), (4.0, 300)] * 4)
    specs = [
        ChapterSpec(
            tuple(parts),
            "mp3",
            RATE,
            tmp_path / f"t{i}.m4a",
            output_format="m4a",
            loudness_lufs=-20,
        )
        for i in range(3)
    ]
    alone = assemble_chapter(specs[0])
    expected = alone.path.read_bytes()
    results: list[bytes] = []
    errors: list[BaseException] = []

    def run(spec: ChapterSpec) -> None:
        try:
            results.append(assemble_chapter(spec).path.read_bytes())
        except BaseException as e:  # re-raised in the test thread below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(s,)) for s in specs[1:]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == [expected, expected]
