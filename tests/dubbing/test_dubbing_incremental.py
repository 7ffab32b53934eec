"""Issue 14 for dubbed chapters: an unchanged re-run rebuilds nothing, a changed line rebuilds
what depends on it (the track, its subtitles and its own clip only), and a stop is seen between
lines with nothing written under a final name after it."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import pytest
from audio.test_audio_support import tone, write_part
from helpers import make_plan, read_report, run_plan

import pipeline.audio.assemble
import pipeline.dubbing.clips
import pipeline.dubbing.lineaudio
import pipeline.dubbing.track
from dubbing.dubsupport import cue_texts, write_dub_job, write_srt
from pipeline.audio.control import FinishCancelled
from pipeline.audio.fingerprint import sidecar_path
from pipeline.dubbing.chapter import dub_chapter
from pipeline.dubbing.incremental import CLIP_RECORD
from pipeline.dubbing.model import DubLine, DubSpec
from pipeline.localserver import LocalServer
from pipeline.runner import OutputOptions

pytestmark = pytest.mark.anyio

CUES = 12


def files(out: Path) -> dict[str, tuple[int, int]]:
    """Every output file but report.json and the lock: (inode, modification time)."""
    found = {}
    for path in out.rglob("*"):
        if path.is_file() and path.name not in {"report.json", ".tts-pipeline.lock"}:
            if ".cache" in path.relative_to(out).parts:
                continue
            st = path.stat()
            found[path.relative_to(out).as_posix()] = (st.st_ino, st.st_mtime_ns)
    return found


async def dub_job(
    job: Path, server: LocalServer, out: Path, **output: Any
) -> dict[str, Any]:
    plan = make_plan(job)
    settings = plan.job.output
    fields = {"format": settings.format, "clips": settings.clips, **output}
    options = OutputOptions(**fields)
    report = await run_plan(plan, server, out, output=options)
    assert report.status == "ok"
    return read_report(out)


def refuse_audio(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any encoding of a track, a stretched clip or a joined clip fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("wrote audio whose inputs did not change")

    monkeypatch.setattr(pipeline.dubbing.lineaudio, "encode_blocks", refuse)
    monkeypatch.setattr(pipeline.dubbing.track, "encode_blocks", refuse)
    monkeypatch.setattr(pipeline.dubbing.clips, "encode_blocks", refuse)
    monkeypatch.setattr(pipeline.dubbing.clips, "assemble_chapter", refuse)
    monkeypatch.setattr(pipeline.audio.assemble, "assemble_chapter", refuse)


def srt_job(tmp_path: Path, texts: list[str]) -> Path:
    write_srt(tmp_path / "scene.srt", texts)
    return write_dub_job(tmp_path, tmp_path / "scene.srt",
                         defaults={"fit": "stretch", "max_speed": 1.25})


async def test_an_unchanged_srt_rerun_rebuilds_nothing_and_says_so(
    tmp_path: Path, local_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = cue_texts(CUES, overflow_every=4)  # some lines are stretched into their slot
    job = srt_job(tmp_path, texts)
    out = tmp_path / "out"
    first = await dub_job(job, local_server, out, subtitles=("srt", "vtt"))
    dubbing = first["chapters"][0]["dubbing"]
    assert dubbing["stretched"] > 0
    assert (dubbing["reused_track"], dubbing["reused_clips"]) == (False, 0)
    before = files(out)
    assert {"scene.wav", "scene.srt", "scene.vtt", "scene/clips.csv"} <= before.keys()
    refuse_audio(monkeypatch)
    second = await dub_job(job, local_server, out, subtitles=("srt", "vtt"))
    assert files(out) == before  # same inodes and times: not one file written again
    chapter = second["chapters"][0]
    assert chapter["dubbing"] == dict(dubbing, reused_track=True, reused_clips=CUES)
    assert chapter["duration_s"] == first["chapters"][0]["duration_s"]
    assert chapter["subtitles"] == ["scene.srt", "scene.vtt"]
    assert second["totals"]["requests"] == 0


async def test_an_edited_line_rebuilds_the_track_and_only_its_own_clip(
    tmp_path: Path, local_server: LocalServer
) -> None:
    texts = cue_texts(CUES)
    out = tmp_path / "out"
    await dub_job(srt_job(tmp_path, texts), local_server, out, subtitles=("srt",))
    before = files(out)
    texts[4] = "A new line here."
    report = await dub_job(srt_job(tmp_path, texts), local_server, out, subtitles=("srt",))
    after = files(out)
    changed = {name for name in after if after[name] != before.get(name)}
    assert changed == {
        "scene.wav", "scene.srt", f".{'scene.wav'}.finish.json",
        "scene/cue-0005.wav", "scene/clips.csv", f"scene/{CLIP_RECORD}",
    }
    dubbing = report["chapters"][0]["dubbing"]
    assert (dubbing["reused_track"], dubbing["reused_clips"]) == (False, CUES - 1)
    with (out / "scene" / "clips.csv").open(newline="", encoding="utf-8") as f:
        assert [r["text"] for r in csv.DictReader(f)][4] == "A new line here."
    assert "A new line here." in (out / "scene.srt").read_text(encoding="utf-8")


async def test_a_csv_with_cue_times_moved_rebuilds_the_track_and_keeps_the_clips(
    tmp_path: Path, local_server: LocalServer
) -> None:
    rows = [("One.", 0.5), ("Two, then.", 2.0), ("Three.", 4.0)]

    def write(shift: float) -> Path:
        body = "chapter,id,text,start\n" + "".join(
            f"sc,l{n},\"{text}\",{start + (shift if n == 2 else 0)}\n"
            for n, (text, start) in enumerate(rows)
        )
        (tmp_path / "lines.csv").write_text(body, encoding="utf-8")
        return write_dub_job(tmp_path, tmp_path / "lines.csv")

    out = tmp_path / "out"
    first = await dub_job(write(0.0), local_server, out)
    before = files(out)
    same = await dub_job(write(0.0), local_server, out)
    assert files(out) == before
    assert same["chapters"][0]["dubbing"]["reused_track"] is True
    moved = await dub_job(write(1.0), local_server, out)
    after = files(out)
    assert after["sc.wav"] != before["sc.wav"]
    assert moved["chapters"][0]["duration_s"] > first["chapters"][0]["duration_s"]
    # The clips do not depend on a cue's time (no line is stretched): all kept.
    assert [after[f"sc/l{n}.wav"] for n in range(3)] == [before[f"sc/l{n}.wav"] for n in range(3)]
    assert moved["chapters"][0]["dubbing"]["reused_clips"] == 3


def lines_of(tmp_path: Path, count: int) -> list[DubLine]:
    lines = []
    for n in range(count):
        path = tmp_path / f"chunk{n}.wav"
        write_part(path, "wav", 16000, tone(300.0 + 50 * n, 0.4, 16000))
        lines.append(DubLine(f"l{n}", f"line {n}", None, n * 1.0, n * 1.0 + 0.8, (path,),
                             keys=(f"key{n}",)))
    return lines


def test_a_stop_between_lines_leaves_no_track_and_keeps_the_clips_written(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    spec = DubSpec("wav", 16000, None, "wav", out, "scene", out / "scene.wav", clips=True,
                   subtitles=("srt",))
    lines = lines_of(tmp_path, 8)
    folder = out / "scene"

    def cancel() -> bool:  # stopped once three clips are written
        return len(list(folder.glob("*.wav"))) >= 3

    with pytest.raises(FinishCancelled):
        dub_chapter(spec, lines, cancel=cancel)
    assert not (out / "scene.wav").exists() and not (out / "scene.srt").exists()
    assert not sidecar_path(out / "scene.wav").exists()
    assert [p.name for p in out.iterdir()] == ["scene"]  # no temp file left either
    written = sorted(p.name for p in (out / "scene").iterdir() if p.suffix == ".wav")
    recorded = json.loads((out / "scene" / CLIP_RECORD).read_text(encoding="utf-8"))["clips"]
    assert sorted(recorded) == written and len(written) == 3
    kept = {name: os.stat(out / "scene" / name).st_ino for name in written}
    outcome = dub_chapter(spec, lines)
    assert outcome.clips_reused == len(written)
    assert {name: os.stat(out / "scene" / name).st_ino for name in written} == kept
    assert (out / "scene.wav").is_file() and (out / "scene.srt").is_file()
    (out / "scene" / "l1.wav").unlink()  # a clip deleted by hand is the only one written
    again = dub_chapter(spec, lines)
    assert again.track_reused and again.clips_reused == 7
    assert (out / "scene" / "l1.wav").is_file()


async def test_untimed_clips_and_their_joined_chapter_are_kept_on_an_unchanged_rerun(
    tmp_path: Path, local_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers import texts, write_job

    job = write_job(tmp_path, {"a": texts(4)})
    out = tmp_path / "out"
    options = OutputOptions(clips=True, subtitles=("srt",))
    first = await run_plan(make_plan(job), local_server, out, output=options)
    assert first.status == "ok"
    before = files(out)
    assert {"a.wav", "a.srt", "a/clips.csv"} <= before.keys()
    refuse_audio(monkeypatch)
    second = await run_plan(make_plan(job), local_server, out, output=options)
    assert second.status == "ok" and files(out) == before
    dubbing = read_report(out)["chapters"][0]["dubbing"]
    assert (dubbing["timed"], dubbing["reused_clips"]) == (False, 4)
    assert "reused_track" not in dubbing
