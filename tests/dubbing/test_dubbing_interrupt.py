"""Issue 14, point 4, for dubbed chapters: Ctrl-C while a timed track and its clips are being
written stops within the grace, and report.json, written last, matches the disk."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import cli_env, interrupt_when, start_cli

from dubbing.dubsupport import cue_texts, write_dub_job, write_srt
from pipeline.dubbing.incremental import CLIP_RECORD
from pipeline.localserver import LocalServer

# 600 cues, 20 minutes of track: finishing (an mp3 track and an mp3 clip per cue) takes
# far longer than the 6 s the test allows, while the distinct lines are a few dozen requests.
CUES = 600


def _wait_for_finishing(process: Any) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        event = json.loads(line)
        if event["event"] == "finishing" and not event["done"]:
            return
    raise AssertionError("no finishing event came: " + process.stderr.read())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_while_dubbing_exits_130_within_6_s_and_the_report_matches_the_disk(
    tmp_path: Path, local_server: LocalServer, sig: signal.Signals
) -> None:
    write_srt(tmp_path / "scene.srt", cue_texts(CUES))
    job = write_dub_job(tmp_path, tmp_path / "scene.srt",
                        output={"format": "mp3", "subtitles": ["srt"]})
    out = tmp_path / "out"
    process = start_cli("run", job, "--out", out, "--base-url", local_server.base_url,
                        "--progress", "jsonl", "--qps", "1000",
                        env=cli_env(COZE_API_TOKEN="test-token"))
    took = interrupt_when(process, lambda: _wait_for_finishing(process), sig, timeout=60)
    assert process.returncode == 130
    assert took < 6.0, f"exited {took:.1f} s after {sig.name}"
    report_path = out / "report.json"
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["status"] == "interrupted"
    chapter = report["chapters"][0]
    assert (chapter["status"], chapter["output"]) == ("pending", None)
    assert not (out / "scene.mp3").exists() and not (out / "scene.srt").exists()
    assert not (out / "scene" / "clips.csv").exists()
    written = report_path.stat().st_mtime_ns
    newer = [
        p for p in out.rglob("*")
        if p.is_file() and p.name != ".tts-pipeline.lock" and p.stat().st_mtime_ns > written
    ]
    assert newer == []
    assert [p.name for p in out.rglob("*.tmp")] == []
    # The clips finished before the stop are recorded, so the next run keeps them.
    clips = sorted(p.name for p in (out / "scene").glob("*.mp3"))
    recorded = json.loads((out / "scene" / CLIP_RECORD).read_text(encoding="utf-8"))["clips"]
    assert sorted(recorded) == clips and len(clips) < CUES
