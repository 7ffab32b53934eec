"""Fit on the local tone server: ``speed`` asks again faster, ``stretch`` compresses locally;
every line that can fit within ``max_speed`` does, the others are reported (report.json,
summary, JUnit), and ``fit_strict`` fails the chapter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from helpers import make_plan, read_report, run_plan

from dubbing.dubsupport import (
    FIT_LINES,
    LONG_LINES,
    SLOT_S,
    STEP_S,
    cue_texts,
    onsets,
    read_wav,
    tone_seconds,
    write_dub_job,
    write_srt,
)
from pipeline.junit import junit_xml
from pipeline.localserver import LocalServer
from pipeline.localserver.stats import body_key
from pipeline.runner import OutputOptions
from pipeline.speech import SpeechRequest
from pipeline.summary import markdown_summary

pytestmark = pytest.mark.anyio

MakeServer = Callable[..., LocalServer]
CUES = 30
EVERY = 5  # 6 overflowing cues: 4 that can fit at 1.25x, 2 that cannot


async def run(
    server: LocalServer, tmp_path: Path, fit: str, *, strict: bool = False, fmt: str = "wav"
) -> tuple[list[tuple[float, float, str, str]], Path, dict[str, Any]]:
    srt = tmp_path / "scene.srt"
    cues = write_srt(srt, cue_texts(CUES, overflow_every=EVERY))
    job = write_dub_job(tmp_path, srt, fmt=fmt, defaults={"fit": fit},
                        output={"fit_strict": strict})
    plan = make_plan(job)
    out = tmp_path / "out"
    options = OutputOptions(clips=True, fit_strict=plan.job.output.fit_strict)
    await run_plan(plan, server, out, output=options)
    return cues, out, read_report(out)


def overflowing(cues: list[tuple[float, float, str, str]]) -> list[str]:
    return [f"cue-{n:04d}" for n, c in enumerate(cues, 1) if tone_seconds(c[3]) > SLOT_S]


def unfittable(cues: list[tuple[float, float, str, str]]) -> list[str]:
    return [f"cue-{n:04d}" for n, c in enumerate(cues, 1) if c[3] in LONG_LINES]


async def test_without_fit_every_long_line_is_reported_with_its_overlap(
    make_server: MakeServer, tmp_path: Path
) -> None:
    cues, out, report = await run(make_server(), tmp_path, "none")
    dubbing = report["chapters"][0]["dubbing"]
    assert [o["line"] for o in dubbing["overflows"]] == overflowing(cues)
    first = dubbing["overflows"][0]
    text = dict(zip(overflowing(cues), [c[3] for c in cues if tone_seconds(c[3]) > SLOT_S],
                    strict=True))[first["line"]]
    assert first["slot_s"] == SLOT_S
    assert first["overflow_s"] == pytest.approx(tone_seconds(text) - SLOT_S, abs=0.002)
    # Only lines running past the next cue's start overlap it (cues are 2 s apart); the
    # last cue has none after it, and the track is as long as its audio.
    assert [o["line"] for o in dubbing["overlaps"]] == [
        f"cue-{n:04d}" for n, c in enumerate(cues[:-1], 1) if tone_seconds(c[3]) > STEP_S
    ]
    samples, rate = read_wav(out / "scene.wav")
    last = cues[-1]
    assert len(samples) / rate == pytest.approx(
        max(last[1], last[0] + tone_seconds(last[3])), abs=0.002
    )
    assert report["status"] == "ok"  # overflow is reported, not a failure


async def test_fit_speed_asks_again_just_fast_enough_and_the_cache_keeps_both(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server()
    cues, out, report = await run(server, tmp_path, "speed")
    dubbing = report["chapters"][0]["dubbing"]
    assert dubbing["refit"] == len(overflowing(cues))
    assert [o["line"] for o in dubbing["overflows"]] == unfittable(cues)
    for over in dubbing["overflows"]:  # at the cap, 1.25x
        assert over["audio_s"] == pytest.approx(tone_seconds(LONG_LINES[0], 1.25), abs=0.002)
    # One request per distinct faster line (two cues of one text ask once), on top of the
    # first answers: one per cue, or one per distinct text once identical requests are sent
    # once (issue 18).
    refits = 3
    first = {CUES, len({c[3] for c in cues})}
    assert report["totals"]["requests"] == server.stats.requests
    assert server.stats.requests - refits in first
    # 1.61 s / 1.5 s * 1.02 for the first fit line; the cap (1.25) for the others.
    chunks = {c.text: c for c in make_plan(tmp_path / "job.yaml").chunks()}
    for text, speed in ((FIT_LINES[0], 1.095), (FIT_LINES[1], 1.25), (LONG_LINES[0], 1.25)):
        faster = replace(chunks[text].params, speed=speed)
        key = body_key(SpeechRequest(text, faster).body())
        assert server.stats.by_input[key] == 1
    assert tone_seconds(FIT_LINES[0], 1.095) <= SLOT_S
    # A second run pays nothing: both answers of every refitted line are cached.
    _, _, second = await run(server, tmp_path, "speed")
    assert second["totals"]["requests"] == 0
    # ... and rebuilds nothing: the faster answers' speeds are among the track's inputs.
    again = second["chapters"][0]["dubbing"]
    assert dubbing["reused_track"] is False and dubbing["reused_clips"] == 0
    assert again == dict(dubbing, reused_track=True, reused_clips=CUES)


async def test_fit_stretch_compresses_locally_without_a_request(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server()
    cues, out, report = await run(server, tmp_path, "stretch")
    dubbing = report["chapters"][0]["dubbing"]
    assert server.stats.requests in {CUES, len({c[3] for c in cues})}  # none for stretch
    assert dubbing["stretched"] == len(overflowing(cues))
    assert [o["line"] for o in dubbing["overflows"]] == unfittable(cues)
    samples, rate = read_wav(out / "scene.wav")
    # Onsets by energy: not after a line that still runs into the next cue.
    overlapped = {o["line"] for o in dubbing["overlaps"]}
    starts = [c[0] for n, c in enumerate(cues) if f"cue-{n:04d}" not in overlapped]
    assert len(starts) == CUES - len(overlapped)
    errors = [abs(a - b) for a, b in zip(onsets(samples, rate, starts), starts, strict=True)]
    assert max(errors) < 0.020
    fitted = [n for n, c in enumerate(cues, 1) if c[3] in FIT_LINES]
    rows = (out / "scene" / "clips.csv").read_text(encoding="utf-8").splitlines()[1:]
    for n in fitted:
        duration = float(rows[n - 1].split(",")[4])
        assert duration <= SLOT_S + 0.001


async def test_overflows_are_in_the_summary_and_junit_and_fit_strict_fails_the_chapter(
    make_server: MakeServer, tmp_path: Path
) -> None:
    cues, out, report = await run(make_server(), tmp_path, "speed", strict=True)
    chapter = report["chapters"][0]
    assert report["status"] == "failed" and chapter["status"] == "failed"
    assert chapter["error"]["line"] == unfittable(cues)[0]
    assert "fit_strict" in chapter["error"]["message"]
    summary = markdown_summary(report)
    assert "Lines longer than their cue (2)" in summary
    xml = junit_xml(report)
    for line in unfittable(cues):
        assert f'name="scene fit {line}"' in xml
    assert xml.count('type="FitOverflow"') == len(unfittable(cues))


async def test_plan_bounds_the_fit_speed_requests_and_the_run_stays_within_it(
    make_server: MakeServer, tmp_path: Path
) -> None:
    from helpers import cli_env, run_cli

    from pipeline.dubbing.fit import refit_bound

    server = make_server()
    cues, _, report = await run(server, tmp_path, "speed")
    plan = make_plan(tmp_path / "job.yaml")
    bound, characters = refit_bound(plan)
    # Every cue may overflow as far as plan knows: one per distinct text (identical requests
    # of a chapter are sent once), whatever the audio turns out to be.
    texts = {c[3] for c in cues}
    assert bound == len(texts) and characters == sum(len(t) for t in texts)
    # What the run asked again: the distinct bodies beyond one per text (the faster ones).
    asked_again = len(server.stats.by_input) - len(texts)
    assert report["chapters"][0]["dubbing"]["refit"] == len(overflowing(cues))
    assert 0 < asked_again <= bound
    # No fit speed, or lines already at their cap: nothing to ask again.
    for defaults in ({"fit": "stretch"}, {"fit": "speed", "speed": 1.25}):
        write_dub_job(tmp_path, tmp_path / "scene.srt", defaults=defaults)
        assert refit_bound(make_plan(tmp_path / "job.yaml")) == (0, 0)
    write_dub_job(tmp_path, tmp_path / "scene.srt", defaults={"fit": "speed"})
    shown = run_cli("plan", tmp_path / "job.yaml", env=cli_env())
    assert shown.returncode == 0, shown.stderr
    assert (f"fit speed: at most {bound} more requests ({characters} characters) if every "
            "`fit: speed` line overflows its cue (worst case") in shown.stdout
