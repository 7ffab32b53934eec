"""Lossless joins: every format at several rates, decoded by PyAV and libsndfile."""

from __future__ import annotations

import struct
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from test_audio_support import (
    EXTENSIONS,
    FREQUENCIES,
    decode,
    dominant_frequency,
    make_parts,
)

from pipeline.audio import AudioError, ChapterSpec, assemble_chapter, check_audio
from pipeline.audio.mp3 import read_mp3
from pipeline.audio.ogg import read_pages

CASES = [
    (fmt, rate)
    for fmt, rates in (
        ("pcm", (8000, 24000, 44100)),
        ("wav", (16000, 22050, 48000)),
        ("mp3", (16000, 22050, 24000, 44100)),
        ("ogg_opus", (16000, 22050, 24000, 44100)),
    )
    for rate in rates
]
# (seconds of tone, pause after it in ms): one line of two chunks, a zero pause, odd lengths.
SPANS = [(0.9, 300), (0.61, 0), (1.27, 450), (0.5, 0), (0.73, 200)]


def _spec(tmp_path: Path, fmt: str, rate: int, **kw: Any) -> ChapterSpec:
    parts = make_parts(tmp_path, fmt, rate, SPANS)
    # First line: parts 0 and 1 (no pause between them), then one part per line.
    parts[0] = replace(parts[0], line_id="line0", end_of_line=False, pause_after_ms=0)
    parts[1] = replace(parts[1], line_id="line0", end_of_line=True, pause_after_ms=300)
    spec = ChapterSpec(
        tuple(parts),
        fmt,
        rate,
        tmp_path / f"chapter.{EXTENSIONS[fmt]}",
        title="第一回 The Start",
        album="Book",
        track=7,
        subtitles=("srt", "vtt"),
    )
    return replace(spec, **kw)


def _soundfile_frames(path: Path, fmt: str, rate: int) -> tuple[int, int]:
    if fmt == "pcm":
        data, sr = sf.read(str(path), format="RAW", subtype="PCM_16", samplerate=rate, channels=1)
    else:
        data, sr = sf.read(str(path))
    return len(data), sr


@pytest.mark.parametrize(("fmt", "rate"), CASES)
def test_join_decodes_and_lasts_parts_plus_pauses(tmp_path: Path, fmt: str, rate: int) -> None:
    spec = _spec(tmp_path, fmt, rate)
    result = assemble_chapter(spec)

    samples, out_rate = decode(result.path, fmt, rate)  # fails on any FFmpeg warning
    # libsndfile decodes Opus at the OpusHead's rate, FFmpeg at 48 kHz: compare seconds.
    sf_frames, sf_rate = _soundfile_frames(result.path, fmt, rate)
    assert sf_frames / sf_rate == pytest.approx(len(samples) / out_rate, abs=1 / sf_rate)
    assert result.duration_s == pytest.approx(len(samples) / out_rate, abs=1e-9)

    parts_s = sum(check_audio(p.path.read_bytes(), fmt, rate) for p in spec.parts)
    pauses_s = sum(p.pause_after_ms for p in spec.parts if p.end_of_line) / 1000
    if fmt in ("pcm", "wav"):
        assert len(samples) == round((parts_s + pauses_s) * rate)
    else:
        assert abs(len(samples) / out_rate - parts_s - pauses_s) <= 0.010 * len(spec.parts)


@pytest.mark.parametrize(("fmt", "rate"), CASES)
def test_parts_are_in_order_where_the_cues_say(tmp_path: Path, fmt: str, rate: int) -> None:
    result = assemble_chapter(_spec(tmp_path, fmt, rate))
    samples, out_rate = decode(result.path, fmt, rate)
    assert len(result.cues) == len(SPANS)
    for i, cue in enumerate(result.cues):
        # The middle of each cue, away from the joins, must be that part's tone.
        lo = round((cue.start_s + 0.1) * out_rate)
        hi = round((cue.end_s - 0.1) * out_rate)
        found = dominant_frequency(samples[lo:hi], out_rate)
        assert found == pytest.approx(FREQUENCIES[i], abs=15), (i, cue)
        assert cue.end_s - cue.start_s == pytest.approx(SPANS[i][0], abs=0.03)
        assert cue.text == f"text {i}"


@pytest.mark.parametrize("fmt", ["pcm", "wav"])
def test_pauses_are_digital_silence(tmp_path: Path, fmt: str) -> None:
    result = assemble_chapter(_spec(tmp_path, fmt, 16000))
    samples, rate = decode(result.path, fmt, 16000)
    gap = samples[round(result.cues[1].end_s * rate) + 2 : round(result.cues[2].start_s * rate) - 2]
    assert len(gap) == pytest.approx(0.3 * rate, abs=5)
    assert not np.any(gap)


def test_mp3_has_one_id3_tag_and_one_info_frame(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "mp3", 24000)
    data = assemble_chapter(spec).path.read_bytes()
    assert data.startswith(b"ID3\x04")
    assert data.count(b"ID3") == 1
    assert data.count(b"Info") + data.count(b"Xing") == 1
    audio = read_mp3(data)
    first = read_mp3(spec.parts[0].path.read_bytes())
    assert audio.has_lame_tag and audio.delay == first.delay
    # The Info frame counts every audio frame after it, and the bytes from it to the end.
    at = data.find(b"Info")
    frames, size = struct.unpack(">II", data[at + 8 : at + 16])
    assert frames == len(audio.frames)
    assert size == len(data) - _id3_size(data)
    assert not any(check in data for check in (b"TAG", b"APETAGEX"))


def _id3_size(data: bytes) -> int:
    return 10 + ((data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9])


def test_mp3_tags_read_back(tmp_path: Path) -> None:
    import av

    path = assemble_chapter(_spec(tmp_path, "mp3", 44100)).path
    with av.open(str(path)) as c:
        assert {k: c.metadata.get(k) for k in ("title", "album", "track")} == {
            "title": "第一回 The Start",
            "album": "Book",
            "track": "7",
        }


def test_ogg_is_one_logical_stream(tmp_path: Path) -> None:
    data = assemble_chapter(_spec(tmp_path, "ogg_opus", 24000)).path.read_bytes()
    pages = list(read_pages(data))  # checks every CRC
    assert {p.serial for p in pages} == {pages[0].serial}
    assert [p.sequence for p in pages] == list(range(len(pages)))
    assert pages[0].flags & 2 and pages[0].body.startswith(b"OpusHead")
    assert pages[1].body.startswith(b"OpusTags") and b"TITLE=" in pages[1].body
    assert data.count(b"OpusHead") == 1 and data.count(b"OpusTags") == 1
    assert [p.flags & 4 for p in pages] == [0] * (len(pages) - 1) + [4]
    assert sum(p.flags & 2 for p in pages) == 2  # one BOS page
    granules = [p.granule for p in pages[2:] if p.granule != -1]
    assert granules == sorted(granules) and granules[0] > 0


def test_wav_part_with_extra_chunks_and_one_header(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "wav", 22050)
    assert b"LIST" in spec.parts[0].path.read_bytes()  # the parts carry a LIST chunk
    data = assemble_chapter(spec).path.read_bytes()
    assert data.count(b"RIFF") == 1 and data.count(b"data") == 1 and b"LIST" not in data
    (riff_size,) = struct.unpack("<I", data[4:8])
    assert riff_size == len(data) - 8


def test_subtitles_are_written_beside_the_chapter(tmp_path: Path) -> None:
    result = assemble_chapter(_spec(tmp_path, "wav", 16000))
    assert [p.name for p in result.subtitle_paths] == ["chapter.srt", "chapter.vtt"]
    srt = (tmp_path / "chapter.srt").read_text()
    assert srt.startswith("1\n00:00:00,000 --> 00:00:00,900\ntext 0\n\n2\n")
    assert (tmp_path / "chapter.vtt").read_text().startswith("WEBVTT\n\n00:00:00.000 --> ")


def test_a_bad_part_leaves_no_file(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "mp3", 24000)
    spec.out_path.write_bytes(b"old chapter")
    spec.parts[3].path.write_bytes(spec.parts[3].path.read_bytes()[:-100])  # truncated
    with pytest.raises(AudioError, match="truncated"):
        assemble_chapter(spec)
    assert spec.out_path.read_bytes() == b"old chapter"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_parts_of_different_rates_are_refused(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "wav", 16000)
    other = make_parts(tmp_path / ".." / tmp_path.name, "wav", 22050, [(0.5, 0)])
    mixed = spec.parts[:2] + tuple(other)
    with pytest.raises(AudioError, match="Hz"):
        assemble_chapter(replace(spec, parts=mixed))
    assert not spec.out_path.exists()
