"""check_output_dir: the gate's measures over finished chapters and clips, without network."""

from __future__ import annotations

import csv
import json
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import RATE, make_plan, run_plan
from test_quality import burst, quiet, speech

from pipeline.audio.chunkmap import chunk_map_path
from pipeline.audio.model import Cue
from pipeline.audio.subtitles import to_srt, to_vtt
from pipeline.checkdir import WINDOW_S, check_output_dir, read_cues
from pipeline.errors import ConfigError
from pipeline.localserver import LocalServer
from pipeline.quality import text_units

SENTENCES = [
    "The lighthouse keeper climbed the stairs each evening before the sun went down.",
    "Rain had fallen for three days, and the river was higher than anyone remembered.",
    "She folded the letter twice, put it in her pocket, and walked out into the street.",
    "Nobody in the village could say when the old mill had last turned its wheel.",
    "The train was late again, so the passengers stood on the platform and waited.",
    "He kept a small notebook in which he wrote the names of every bird he saw.",
    "At the end of the road there was a gate, and beyond the gate a field of barley.",
    "The children counted the boats in the harbour and argued about the biggest one.",
]


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.rint(np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


def chapter(
    parts: list[tuple[str, np.ndarray]], pause_s: float = 0.4
) -> tuple[np.ndarray, list[Cue]]:
    """The parts joined with pauses, and one cue per part (as assembly writes them)."""
    pieces, cues, at = [], [], 0
    for index, (text, audio) in enumerate(parts):
        cues.append(
            Cue(round(at / RATE * 1000), round((at + audio.size) / RATE * 1000), text, f"l{index}")
        )
        pieces += [audio, quiet(pause_s)]
        at += audio.size + round(pause_s * RATE)
    return np.concatenate(pieces), cues


def spoken(text: str, **kw: float) -> np.ndarray:
    return speech(text_units(text).total, **kw)


def test_a_chapter_with_subtitles_is_judged_cue_by_cue(tmp_path: Path) -> None:
    parts = [(t, spoken(t)) for t in SENTENCES]
    bad = SENTENCES[5]
    parts[5] = (bad, np.concatenate((spoken(bad)[:RATE], quiet(4.5), spoken(bad)[RATE:])))
    audio, cues = chapter(parts)
    write_wav(tmp_path / "c1.wav", audio)
    (tmp_path / "c1.srt").write_text(to_srt(cues), encoding="utf-8")
    result = check_output_dir(tmp_path)
    assert (result.files, result.segments) == (1, len(SENTENCES))
    assert [(f.file, f.text, f.rules) for f in result.findings] == [
        ("c1.wav", bad, ("duration_long", "gap"))
    ]
    finding = result.findings[0].to_json()
    assert finding["start_s"] == pytest.approx(cues[5].start_s, abs=0.01)
    assert finding["measures"]["longest_gap_s"] == pytest.approx(4.5, abs=0.05)


def halves(cue: Cue, gap_ms: int) -> list[Cue]:
    """A chunk's cue cut in two at a word, its time shared by characters (readable cues),
    ``gap_ms`` between them (a pause found there)."""
    words = cue.text.split()
    first = " ".join(words[: len(words) // 2])
    middle = cue.start_ms + round((cue.end_ms - cue.start_ms) * len(first) / len(cue.text))
    return [
        Cue(cue.start_ms, middle, first, cue.line_id),
        Cue(middle + gap_ms, cue.end_ms, " ".join(words[len(words) // 2 :]), cue.line_id),
    ]


@pytest.mark.parametrize("gap_ms", [0, 250])
def test_without_a_chunk_map_cues_are_joined_into_sentences(tmp_path: Path, gap_ms: int) -> None:
    parts = [(t, spoken(t)) for t in SENTENCES]
    bad = SENTENCES[5]
    parts[5] = (bad, np.concatenate((spoken(bad)[:RATE], quiet(4.5), spoken(bad)[RATE:])))
    audio, cues = chapter(parts)
    write_wav(tmp_path / "c1.wav", audio)
    readable = [half for cue in cues for half in halves(cue, gap_ms)]
    (tmp_path / "c1.srt").write_text(to_srt(readable), encoding="utf-8")
    # A map that is not one: said, and the chapter is judged by its cues all the same.
    (tmp_path / "c1.chunks.json").write_text('{"chunk_map": 1}', encoding="utf-8")
    result = check_output_dir(tmp_path)
    assert (result.files, result.segments) == (1, len(SENTENCES))
    found = [(f.file, f.text, f.rules) for f in result.findings]
    assert found == [
        ("c1.chunks.json", None, ("unreadable",)),
        ("c1.wav", bad, ("duration_long", "gap")),
    ]
    assert "audio must be an object" in (result.findings[0].message or "")


def test_a_quiet_first_cue_is_found_once_the_chapter_median_forms(tmp_path: Path) -> None:
    parts = [(t, spoken(t, level_db=-20.0 if i else -34.0)) for i, t in enumerate(SENTENCES)]
    audio, cues = chapter(parts)
    write_wav(tmp_path / "c1.wav", audio)
    (tmp_path / "c1.vtt").write_text(to_vtt(cues), encoding="utf-8")
    result = check_output_dir(tmp_path)
    assert [(f.text, f.rules) for f in result.findings] == [(SENTENCES[0], ("loudness_jump",))]


def test_without_subtitles_windows_find_silences_across_their_ends(tmp_path: Path) -> None:
    talk = np.tile(np.concatenate((burst(1.0), quiet(0.3))), 30)  # 39 s
    cut = round((WINDOW_S - 2.0) * RATE)
    gap = np.concatenate((talk[:cut], quiet(4.0), talk[cut:]))
    write_wav(tmp_path / "clean.wav", talk)
    (tmp_path / "sub").mkdir()
    write_wav(tmp_path / "sub" / "gap.wav", gap)
    write_wav(tmp_path / "tail.wav", np.concatenate((talk, quiet(4.0))))
    (tmp_path / ".cache").mkdir()
    write_wav(tmp_path / ".cache" / "skipped.wav", quiet(3.0))
    result = check_output_dir(tmp_path)
    assert result.files == 3
    found = sorted((f.file, f.rules) for f in result.findings)
    assert found == [("sub/gap.wav", ("gap",)), ("tail.wav", ("edge_silence",))]
    gap_finding = next(f for f in result.findings if f.file == "sub/gap.wav")
    assert gap_finding.start_s == pytest.approx(WINDOW_S)


def test_report_json_names_the_chapters(tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav", quiet(2.0))  # not a chapter of the report: not looked at
    audio, cues = chapter([(t, spoken(t)) for t in SENTENCES[:4]])
    write_wav(tmp_path / "c1.wav", audio)
    report = {"chapters": [{"id": "c1", "output": "c1.wav"}, {"id": "x", "output": "../x.wav"}]}
    (tmp_path / "report.json").write_text(json.dumps(report), encoding="utf-8")
    result = check_output_dir(tmp_path)
    assert (result.files, result.findings) == (1, [])


def test_clips_are_judged_whole_with_their_text(tmp_path: Path) -> None:
    folder = tmp_path / "c1"
    folder.mkdir()
    rows = []
    for index, text in enumerate(SENTENCES):
        audio = spoken(text)
        if index == 6:
            audio = np.clip(audio * 40, -1, 1)
        write_wav(folder / f"l{index}.wav", audio)
        rows.append({"line_id": f"l{index}", "file": f"l{index}.wav", "text": text})
    rows.append({"line_id": "gone", "file": "gone.wav", "text": "missing"})
    with (folder / "clips.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["line_id", "file", "text"])
        writer.writeheader()
        writer.writerows(rows)
    result = check_output_dir(tmp_path)
    found = {f.file: f.rules for f in result.findings}
    assert sorted(found) == ["c1/gone.wav", "c1/l6.wav"]
    assert "clipped" in found["c1/l6.wav"]
    assert found["c1/gone.wav"] == ("unreadable",)
    assert result.files == len(SENTENCES) + 1  # the clips, not counted again as chapters


def test_unreadable_files_and_a_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "broken.mp3").write_bytes(b"not audio at all")
    result = check_output_dir(tmp_path)
    assert [f.rules for f in result.findings] == [("unreadable",)]
    assert "broken.mp3" in (result.findings[0].message or "")
    with pytest.raises(ConfigError, match="not a folder"):
        check_output_dir(tmp_path / "nope")


def test_cues_are_read_from_srt_and_vtt(tmp_path: Path) -> None:
    cues = [Cue(0, 1500, "a < b & c", "l1"), Cue(3_723_004, 3_724_000, "two\nlines", "l2")]
    (tmp_path / "c.srt").write_text(to_srt(cues), encoding="utf-8")
    (tmp_path / "c.vtt").write_text(to_vtt(cues), encoding="utf-8")
    expected = [(0.0, 1.5, "a < b & c"), (3723.004, 3724.0, "two lines")]
    assert read_cues(tmp_path / "c.srt") == expected
    assert read_cues(tmp_path / "c.vtt") == expected


@pytest.mark.anyio
async def test_a_real_run_checks_clean_and_its_faults_are_found(
    tmp_path: Path, make_server: Callable[..., LocalServer]
) -> None:
    server = make_server(engine="espeak")
    job = {
        "defaults": {"voice_id": "local-en-female", "response_format": "mp3", "sample_rate": 24000},
        "chapters": [{"id": "c1", "lines": [{"text": t} for t in SENTENCES]}],
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job), encoding="utf-8")
    clean = tmp_path / "clean"
    await run_plan(make_plan(path), server, clean)
    result = check_output_dir(clean)
    # The chunk map beside the chapter: judged chunk by chunk, with their texts.
    assert (result.files, result.segments, result.findings) == (1, len(SENTENCES), [])
    # No map and no subtitles: the chapter (about 40 s) is judged in windows.
    chunk_map_path(clean / "c1.mp3").unlink()
    result = check_output_dir(clean)
    assert (result.files, result.segments, result.findings) == (1, 2, [])
    # The runner has no gate yet: padded answers land in the chapter, and check finds them.
    server.queue_faults(["padded"])
    faulty = tmp_path / "faulty"
    await run_plan(make_plan(path), server, faulty, cache_dir=faulty / ".cache")
    result = check_output_dir(faulty)
    [finding] = result.findings
    assert "gap" in finding.rules and finding.text in SENTENCES
    assert finding.line is not None and (finding.source_file or "").endswith("job.yaml")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert finding.file_line is not None and finding.text[:20] in lines[finding.file_line - 1]
    chunk_map_path(faulty / "c1.mp3").unlink()
    result = check_output_dir(faulty)
    assert [f.rules for f in result.findings] == [("gap",)]
    assert result.findings[0].text is None
