"""Timed sources: subtitle files as manifests, CSV start/end columns, fit keys; problems as
FILE:LINE."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ManifestError
from pipeline.manifest import load_job
from pipeline.manifest.model import Overrides

VOICE = Overrides(voice_id="local-tone-1")

SRT = """1
00:00:01,000 --> 00:00:02,500
ALICE: Hello <i>there</i>.

2
00:00:03,000 --> 00:00:04,000


3
00:01:05,250 --> 00:01:06,000
No speaker, 10:30 sharp.
"""


def problems(path: Path) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_job(path, VOICE)
    return [str(p) for p in caught.value.problems]


def test_an_srt_is_one_timed_chapter_with_cue_ids_speakers_and_plain_text(
    tmp_path: Path,
) -> None:
    (tmp_path / "scene 1.srt").write_text(SRT, encoding="utf-8")
    job = load_job(tmp_path / "scene 1.srt", VOICE)
    (chapter,) = job.chapters
    assert chapter.id == "scene-1"
    # The empty cue 2 is skipped; cue 3 keeps its number.
    assert [(x.id, x.text, x.speaker, x.start, x.end) for x in chapter.lines] == [
        ("cue-0001", "Hello there.", "ALICE", 1.0, 2.5),
        ("cue-0003", "No speaker, 10:30 sharp.", None, 65.25, 66.0),
    ]
    assert [x.lineno for x in chapter.lines] == [2, 10]


def test_a_job_file_names_a_subtitle_file_with_defaults_and_fit(tmp_path: Path) -> None:
    (tmp_path / "s.vtt").write_text(
        "WEBVTT\n\n00:00.500 --> 00:02.000\n<v Bob>Hi.\n", encoding="utf-8"
    )
    (tmp_path / "job.yaml").write_text(
        "manifest: s.vtt\ndefaults: {voice_id: local-tone-2, fit: speed, max_speed: 1.4}\n"
        "output: {clips: true, fit_strict: true}\n",
        encoding="utf-8",
    )
    job = load_job(tmp_path / "job.yaml")
    (line,) = job.chapters[0].lines
    assert (line.speaker, line.start, line.end, line.fit, line.max_speed) == (
        "Bob", 0.5, 2.0, "speed", 1.4,
    )
    assert line.params.voice_id == "local-tone-2"
    assert job.output.clips and job.output.fit_strict


def test_a_bad_cue_timing_is_an_error_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "bad.srt").write_text(
        "1\n00:00:01,000 --> 00:00:02,000\nOk.\n\n2\n00:00:03 --> 00:00:04,000\nNo.\n",
        encoding="utf-8",
    )
    (found,) = problems(tmp_path / "bad.srt")
    assert found.startswith(f"{tmp_path / 'bad.srt'}:6: bad cue timing")


def test_csv_start_and_end_columns_take_timecodes_or_seconds(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text(
        "chapter,text,start,end,fit\n"
        "sc,One.,\"00:00:01,500\",2.75,stretch\n"
        "sc,Two.,1:02.5,00:01:04,\n"
        "sc,Three.,0.5,,\n",
        encoding="utf-8",
    )
    lines = load_job(tmp_path / "d.csv", VOICE).chapters[0].lines
    assert [(x.start, x.end, x.fit) for x in lines] == [
        (1.5, 2.75, "stretch"), (62.5, 64.0, "none"), (0.5, None, "none"),
    ]


def test_bad_csv_times_and_fit_values_are_errors_at_their_rows(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(
        "chapter,text,start,end,fit,max_speed\n"
        "sc,One.,soon,2,,\n"
        "sc,Two.,3,3,,\n"
        "sc,Three.,,4,,\n"
        "sc,Four.,5,6,faster,\n"
        "sc,Five.,7,8,,9\n",
        encoding="utf-8",
    )
    found = problems(path)
    assert [p.split(": ", 1)[0] for p in found] == [f"{path}:{n}" for n in (2, 3, 4, 5, 6)]
    assert "bad time 'soon'" in found[0]
    assert "end (3) must come after start (3)" in found[1]
    assert "end is set but start is empty" in found[2]
    assert "fit must be one of none, speed, stretch" in found[3]
    assert "max_speed must be a number from 1 to 3" in found[4]


def test_an_ass_file_takes_the_speaker_from_its_name_field(tmp_path: Path) -> None:
    (tmp_path / "a.ass").write_text(
        "[Script Info]\nScriptType: v4.00+\n\n[Events]\n"
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
        "Dialogue: 0,0:00:01.00,0:00:02.00,Default,Carol,0,0,0,,{\\i1}Go{\\i0} now!\n",
        encoding="utf-8",
    )
    (line,) = load_job(tmp_path / "a.ass", VOICE).chapters[0].lines
    assert (line.id, line.text, line.speaker, line.start, line.end) == (
        "cue-0001", "Go now!", "Carol", 1.0, 2.0,
    )
