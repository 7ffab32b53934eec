"""Dubbing end to end on the local tone server: an SRT in, clips, clips.csv, a timed track.

The tone engine's answer for a text lasts 60 ms a character plus 50 ms and starts with a 5 ms
fade-in, so each line's onset in the decoded track can be found by its energy.
"""

from __future__ import annotations

import csv
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import make_plan, read_report, run_plan
from test_docs import schema_problems

from dubbing.dubsupport import (
    SLOT_S,
    cue_texts,
    onsets,
    read_wav,
    tone_seconds,
    write_dub_job,
    write_srt,
)
from pipeline.localserver import LocalServer
from pipeline.manifest.model import TOP_KEYS
from pipeline.runner import OutputOptions

pytestmark = pytest.mark.anyio

MakeServer = Callable[..., LocalServer]
FIGURES: dict[str, Any] = {}


async def dub(
    make_server: MakeServer, tmp_path: Path, count: int, **job: Any
) -> tuple[LocalServer, list[tuple[float, float, str, str]], Path, dict[str, Any]]:
    srt = tmp_path / "scene.srt"
    cues = write_srt(srt, cue_texts(count, overflow_every=job.pop("overflow_every", 0)))
    server = make_server()
    out = tmp_path / "out"
    plan = make_plan(write_dub_job(tmp_path, srt, **job))
    settings = plan.job.output
    options = OutputOptions(
        format=settings.format, clips=settings.clips, fit_strict=settings.fit_strict,
        subtitles=settings.subtitles,
    )
    await run_plan(plan, server, out, concurrency=8, output=options)
    return server, cues, out, read_report(out)


async def check_scene(make_server: MakeServer, tmp_path: Path, count: int) -> None:
    started = time.monotonic()
    server, cues, out, report = await dub(make_server, tmp_path, count)
    elapsed = time.monotonic() - started
    assert report["status"] == "ok"
    distinct = len({text for _, _, _, text in cues})
    # A request per cue; one per distinct line once identical requests are sent once (18).
    assert report["totals"]["chunks"] == count
    assert server.stats.requests in {count, distinct}
    chapter = report["chapters"][0]
    assert chapter["output"] == "scene.wav"
    assert chapter["dubbing"]["timed"] is True
    assert chapter["dubbing"]["overflows"] == [] and chapter["dubbing"]["overlaps"] == []
    # A clip per cue and clips.csv, in cue order.
    with (out / "scene" / "clips.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["line_id"] for r in rows] == [f"cue-{n:04d}" for n in range(1, count + 1)]
    assert [r["speaker"] for r in rows] == [speaker for _, _, speaker, _ in cues]
    assert [r["text"] for r in rows] == [text for _, _, _, text in cues]
    for row, (start, end, _, text) in zip(rows, cues, strict=True):
        assert (float(row["start"]), float(row["end"])) == (start, end)
        assert abs(float(row["duration"]) - tone_seconds(text)) < 0.002
        assert (out / "scene" / row["file"]).is_file()
    # The track: every line where its cue starts, as long as the last cue.
    samples, rate = read_wav(out / "scene.wav")
    assert abs(len(samples) / rate - cues[-1][1]) < 1 / rate + 1e-9
    starts = [start for start, _, _, _ in cues]
    errors = [abs(found - start) for found, start in zip(onsets(samples, rate, starts), starts,
                                                          strict=True)]
    assert max(errors) < 0.020
    FIGURES[count] = {
        "cues": count, "distinct": distinct, "requests": server.stats.requests,
        "onset_max_ms": round(max(errors) * 1000, 2),
        "onset_median_ms": round(statistics.median(errors) * 1000, 2),
        "seconds": round(elapsed, 1),
    }
    print(f"\ndubbing figures: {FIGURES[count]}")


async def test_a_200_cue_srt_gives_a_clip_per_cue_and_a_track_with_every_onset_in_place(
    make_server: MakeServer, tmp_path: Path
) -> None:
    await check_scene(make_server, tmp_path, 200)


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_a_2000_cue_srt_with_4_speakers(make_server: MakeServer, tmp_path: Path) -> None:
    await check_scene(make_server, tmp_path, 2000)


def test_every_cue_of_the_generated_script_fits_its_slot_unless_meant_not_to() -> None:
    texts = cue_texts(60, overflow_every=0)
    assert all(tone_seconds(t) <= SLOT_S for t in texts)


async def test_repeated_lines_are_paid_once(make_server: MakeServer, tmp_path: Path) -> None:
    server, cues, out, report = await dub(make_server, tmp_path, 60)
    distinct = len({text for _, _, _, text in cues})
    assert distinct < 30  # the script repeats its short lines
    assert report["status"] == "ok"
    assert server.stats.requests == distinct
    assert len(list((out / "scene").glob("cue-*.wav"))) == 60  # still a clip per cue


async def test_a_dubbing_report_validates_against_the_documented_schema(
    make_server: MakeServer, tmp_path: Path
) -> None:
    _, _, _, report = await dub(make_server, tmp_path, 10, overflow_every=3)
    assert report["chapters"][0]["dubbing"]["overflows"]
    assert schema_problems(report) == []


@pytest.mark.skipif("cast" not in TOP_KEYS, reason="cast: comes with branch books (issue 16)")
async def test_a_cast_gives_each_speaker_its_voice_and_unnamed_lines_the_default(
    make_server: MakeServer, tmp_path: Path
) -> None:
    srt = tmp_path / "scene.srt"
    cues = write_srt(srt, cue_texts(8))
    job = tmp_path / "job.yaml"
    job.write_text(
        f"manifest: {srt.name}\ndefaults: {{voice_id: local-tone-1, response_format: wav}}\n"
        "cast:\n  ALICE: {voice_id: local-tone-2}\n  BOB: {voice_id: local-tone-3, speed: 1.1}\n"
        "  CAROL: {voice_id: local-tone-4}\n  DAVE: {emotion: happy}\n",
        encoding="utf-8",
    )
    lines = make_plan(job).job.chapters[0].lines
    voices = {"ALICE": "local-tone-2", "BOB": "local-tone-3", "CAROL": "local-tone-4",
              "DAVE": "local-tone-1"}
    assert [x.params.voice_id for x in lines] == [voices[c[2]] for c in cues]
    assert [x.params.speed for x in lines] == [1.1 if c[2] == "BOB" else None for c in cues]
