"""Timed tracks and clips from parts made with PyAV: placement to the sample (wav, pcm) or
within a frame (mp3, Opus), mixing of overlaps, bounded memory, clips.csv, links refused."""

from __future__ import annotations

import csv
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from audio.test_audio_support import decode, tone, write_part

from dubbing.dubsupport import onsets
from pipeline.dubbing.chapter import DubSpec, dub_chapter
from pipeline.dubbing.model import DubLine
from pipeline.dubbing.track import TrackFormat, write_track
from pipeline.errors import StorageError

RATE = 24000
EXT = {"wav": "wav", "pcm": "pcm", "mp3": "mp3", "ogg_opus": "opus"}


def line(tmp: Path, n: int, fmt: str, seconds: float, start: float | None, end: float | None,
         **extra: object) -> DubLine:
    path = tmp / f"p{n}.{EXT[fmt]}"
    rate = 48000 if fmt == "ogg_opus" else RATE
    write_part(path, fmt, RATE, tone(300.0 + 100 * n, seconds, rate))
    return DubLine(f"l{n}", f"Line, \"{n}\"", "ANN" if n % 2 else None, start, end, (path,),
                   **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["wav", "pcm"])
def test_lines_start_at_their_cue_to_the_sample_and_the_track_lasts_to_the_last_end(
    tmp_path: Path, fmt: str
) -> None:
    starts = [0.25, 1.0, 0.6]  # not in order: placed by start all the same
    lines = [line(tmp_path, n, fmt, 0.3, s, s + 0.35) for n, s in enumerate(starts)]
    out = tmp_path / f"track.{EXT[fmt]}"
    duration, results = write_track(lines, TrackFormat(fmt, RATE, fmt), out, {})
    samples, rate = decode(out, fmt, RATE)
    assert len(samples) == round(1.35 * RATE) and duration == pytest.approx(1.35)
    for s in starts:
        at = round(s * RATE)
        assert not np.any(samples[at - 200 : at])  # silence before: the previous line ended
        part, _ = decode(lines[starts.index(s)].paths[0], fmt, RATE)
        assert np.allclose(samples[at : at + len(part)], part, atol=1 / 32768)
    assert [r.id for r in results] == ["l0", "l1", "l2"]
    assert all(r.overflow_s is None and r.overlap_s is None for r in results)


@pytest.mark.parametrize(("fmt", "frame"), [("mp3", 1152), ("ogg_opus", 960)])
def test_lossy_tracks_place_lines_within_a_frame(tmp_path: Path, fmt: str, frame: int) -> None:
    starts = [0.5, 1.7, 3.1]
    lines = [line(tmp_path, n, fmt, 0.5, s, s + 0.8) for n, s in enumerate(starts)]
    out = tmp_path / "track.out"
    out_fmt = "opus" if fmt == "ogg_opus" else fmt
    write_track(lines, TrackFormat(fmt, RATE, out_fmt), out, {})
    samples, rate = decode(out)
    found = onsets(samples, rate, starts, threshold=0.02)
    assert max(abs(a - b) for a, b in zip(found, starts, strict=True)) < frame / rate


def test_overlapping_lines_are_mixed_and_reported(tmp_path: Path) -> None:
    lines = [line(tmp_path, 0, "wav", 1.0, 0.0, 0.5), line(tmp_path, 1, "wav", 0.5, 0.5, 1.0)]
    out = tmp_path / "t.wav"
    duration, results = write_track(lines, TrackFormat("wav", RATE, "wav"), out, {})
    samples, _ = decode(out)
    assert duration == pytest.approx(1.0)
    first, _ = decode(lines[0].paths[0])
    second, _ = decode(lines[1].paths[0])
    half = RATE // 2
    assert np.allclose(samples[half:], first[half:] + second, atol=2 / 32768)
    assert results[0].overlap_s == pytest.approx(0.5)
    assert results[0].overflow_s == pytest.approx(0.5)
    assert results[0].overflow_json() == {"line": "l0", "slot_s": 0.5, "audio_s": 1.0,
                                          "overflow_s": 0.5}


def test_a_two_hour_track_is_written_in_blocks_not_held(tmp_path: Path) -> None:
    rate = 8000
    path = tmp_path / "p.wav"
    write_part(path, "wav", rate, tone(440.0, 0.5, rate))
    lines = [DubLine(f"l{n}", "x", None, s, s + 1, (path,)) for n, s in enumerate((0, 3600, 7199))]
    tracemalloc.start()
    try:
        duration, _ = write_track(lines, TrackFormat("wav", rate, "wav"), tmp_path / "t.wav", {})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert duration == pytest.approx(7200)
    assert os.path.getsize(tmp_path / "t.wav") >= 7200 * rate * 2
    assert peak < 8 * 1024 * 1024  # the track's samples alone would be 230 MB of float32
    (tmp_path / "t.wav").unlink()


def spec(tmp_path: Path, track: bool) -> DubSpec:
    out = tmp_path / "out"
    return DubSpec("wav", RATE, None, "wav", out, "scene",
                   out / "scene.wav" if track else None, clips=True)


def test_clips_and_an_rfc4180_clips_csv_with_stretched_lines(tmp_path: Path) -> None:
    lines = [
        line(tmp_path, 0, "wav", 0.5, 0.0, 1.0),
        line(tmp_path, 1, "wav", 1.2, 1.0, 2.0, fit="stretch", max_speed=1.25),
        line(tmp_path, 2, "wav", 1.5, 2.0, 3.0, fit="stretch", max_speed=1.25),
    ]
    outcome = dub_chapter(spec(tmp_path, track=True), lines)
    folder = tmp_path / "out" / "scene"
    raw = (folder / "clips.csv").read_bytes()
    assert raw.startswith(b"line_id,file,start,end,duration,speaker,text\r\n")
    assert b'"Line, ""1"""' in raw
    with (folder / "clips.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["file"] for r in rows] == ["l0.wav", "l1.wav", "l2.wav"]
    assert [r["speaker"] for r in rows] == ["", "ANN", ""]
    assert rows[1]["text"] == 'Line, "1"'
    durations = [float(r["duration"]) for r in rows]
    assert durations[0] == pytest.approx(0.5, abs=0.001)
    assert durations[1] <= 1.0  # 1.2 s stretched into its 1 s slot
    assert durations[2] == pytest.approx(1.2, abs=0.01)  # 1.5 s at the 1.25 cap: overflows
    for r in rows:
        clip, _ = decode(folder / r["file"])
        assert len(clip) / RATE == pytest.approx(float(r["duration"]), abs=0.001)
    report = outcome.report(True)
    assert report["stretched"] == 2 and [o["line"] for o in report["overflows"]] == ["l2"]
    assert report["clips"] == "scene/clips.csv"


def test_a_link_where_the_clips_go_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "scene").symlink_to(elsewhere)
    with pytest.raises(StorageError, match="symbolic link"):
        dub_chapter(spec(tmp_path, track=False), [line(tmp_path, 0, "wav", 0.2, None, None)])
    assert list(elsewhere.iterdir()) == []
