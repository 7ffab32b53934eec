"""The decoding path: other output formats, resampling, EBU R128 loudness, tags."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
import soundfile as sf
from test_audio_support import FREQUENCIES, decode, dominant_frequency, make_parts

from pipeline.audio import ChapterSpec, assemble_chapter
from pipeline.audio.loudness import integrated_loudness, true_peak_dbtp

SPANS = [(2.0, 300), (1.5, 0), (2.5, 500)]
OUTPUTS = ["mp3", "opus", "flac", "m4a", "wav"]
# AAC in MP4 marks its priming but not its padding: up to one 1024-sample frame more.
SLACK_S = {"m4a": 1024 / 16000}


def _assemble(tmp_path: Path, src: str, rate: int, out: str, lufs: float | None) -> Path:
    parts = make_parts(tmp_path, src, rate, SPANS)
    spec = ChapterSpec(
        tuple(parts),
        src,
        rate,
        tmp_path / f"chapter.{out}",
        output_format=out,
        loudness_lufs=lufs,
        title="Title",
        album="Album",
        track=2,
        subtitles=("srt",),
    )
    result = assemble_chapter(spec)
    samples, out_rate = decode(result.path)
    expected = sum(s for s, _ in SPANS) + sum(p for _, p in SPANS) / 1000
    assert result.duration_s == pytest.approx(expected, abs=0.001)
    assert len(samples) / out_rate == pytest.approx(expected, abs=0.001 + SLACK_S.get(out, 0))
    for i, cue in enumerate(result.cues):
        lo, hi = round((cue.start_s + 0.2) * out_rate), round((cue.end_s - 0.2) * out_rate)
        middle = samples[lo:hi]
        assert dominant_frequency(middle, out_rate) == pytest.approx(FREQUENCIES[i], abs=10)
    return result.path


def _loudness(path: Path) -> float:
    """Measured by the NumPy reference, not by the FFmpeg meter the product uses."""
    samples, rate = decode(path)
    return integrated_loudness(samples, rate)


# Every output format and every source format at least once, without the full product.
PAIRS = [
    ("mp3", 24000, "opus"),
    ("ogg_opus", 22050, "mp3"),
    ("pcm", 16000, "flac"),
    ("wav", 44100, "m4a"),
    ("mp3", 24000, "wav"),
    ("ogg_opus", 22050, "m4a"),
]


@pytest.mark.parametrize(("src", "rate", "out"), PAIRS)
def test_loudness_target_is_met_in_every_format(
    tmp_path: Path, src: str, rate: int, out: str
) -> None:
    path = _assemble(tmp_path, src, rate, out, -16.0)
    assert _loudness(path) == pytest.approx(-16.0, abs=0.5)
    if out != "m4a":  # libsndfile reads no MP4
        data, _ = sf.read(str(path))
        assert len(data) > 0


@pytest.mark.parametrize("out", OUTPUTS)
def test_format_change_without_loudness_keeps_the_level(tmp_path: Path, out: str) -> None:
    path = _assemble(tmp_path, "wav", 24000, out, None)
    # Tones at amplitude 0.3 measure about -14.4 LUFS; no target leaves them there.
    assert _loudness(path) == pytest.approx(-14.4, abs=1.0)


def test_quiet_speech_is_raised_without_clipping(tmp_path: Path) -> None:
    path = _assemble(tmp_path, "wav", 24000, "flac", -14.0)
    samples, _ = decode(path)
    assert _loudness(path) == pytest.approx(-14.0, abs=0.5)
    assert true_peak_dbtp(samples) <= -1.5 + 0.05


@pytest.mark.parametrize("out", ["mp3", "m4a"])
def test_tags_are_written(tmp_path: Path, out: str) -> None:
    path = _assemble(tmp_path, "pcm", 24000, out, None)
    with av.open(str(path)) as c:
        tags = {k: c.metadata.get(k) for k in ("title", "album", "track")}
    assert tags["title"] == "Title" and tags["album"] == "Album"
    assert tags["track"] is not None and tags["track"].split("/")[0] == "2"
