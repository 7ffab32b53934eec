"""Subtitles: one cue per chunk, timed in whole samples, right after an hour of audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from test_audio_support import tone, write_part

from pipeline.audio import ChapterSpec, Cue, Part, assemble_chapter
from pipeline.audio.subtitles import timestamp, to_srt, to_vtt


def test_timestamps_grow_past_99_hours() -> None:
    assert timestamp(0, ",") == "00:00:00,000"
    assert timestamp(3_723_004, ".") == "01:02:03.004"
    assert timestamp(100 * 3_600_000, ",") == "100:00:00,000"


def test_srt_and_vtt_text() -> None:
    cues = [Cue(0, 1500, "Hello\n\n\nworld", "l1"), Cue(1750, 2000, "a <b> & c --> d", "l2")]
    assert to_srt(cues) == (
        "1\n00:00:00,000 --> 00:00:01,500\nHello\nworld\n\n"
        "2\n00:00:01,750 --> 00:00:02,000\na <b> & c --> d\n"
    )
    vtt = to_vtt(cues)
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello\nworld\n\n")
    assert "a &lt;b&gt; &amp; c --&gt; d" in vtt


def _boundary(path: Path, around_s: float, rate: int, rising: bool) -> float:
    """Where the tone starts (rising) or stops, searched within 0.2 s of ``around_s``."""
    start = round((around_s - 0.2) * rate)
    with sf.SoundFile(str(path)) as f:
        f.seek(start)
        block = f.read(round(0.4 * rate), dtype="int16")
    loud = np.flatnonzero(np.abs(block) > 0)
    index = loud[0] if rising else loud[-1] + 1
    return (start + index) / rate


def test_cues_match_the_audio_at_the_end_of_an_hour(tmp_path: Path) -> None:
    rate = 8000
    # Two odd lengths so that rounding to a whole sample or millisecond would drift.
    a = write_part(tmp_path / "a.wav", "wav", rate, tone(440.0, 9.9871, rate))
    b = write_part(tmp_path / "b.wav", "wav", rate, tone(660.0, 10.0133, rate))
    parts = tuple(
        Part(a if i % 2 else b, f"chunk {i}", f"line{i}", True, 250 + i % 3) for i in range(360)
    )
    out = tmp_path / "hour.wav"
    result = assemble_chapter(ChapterSpec(parts, "wav", rate, out, subtitles=("srt",)))
    assert result.duration_s > 3600
    last = result.cues[-1]
    assert abs(_boundary(out, last.start_s, rate, rising=True) - last.start_s) < 0.020
    assert abs(_boundary(out, last.end_s, rate, rising=False) - last.end_s) < 0.020
    srt = (tmp_path / "hour.srt").read_text()
    assert srt.endswith(
        f"360\n{timestamp(last.start_ms, ',')} --> {timestamp(last.end_ms, ',')}\nchunk 359\n"
    )
    lengths = {a: round(9.9871 * rate), b: round(10.0133 * rate)}
    before = sum(lengths[p.path] + p.pause_after_ms * rate // 1000 for p in parts[:-1])
    assert last.start_ms == round(before * 1000 / rate)
    assert last.end_ms == round((before + lengths[parts[-1].path]) * 1000 / rate)
