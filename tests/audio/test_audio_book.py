"""The m4b book: AAC, a chapter mark per chapter at the right time, title and artist."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest
from test_audio_support import decode, dominant_frequency, tone, write_part

from pipeline.audio import AudioError, build_book


def _chapter(tmp_path: Path, name: str, fmt: str, seconds: float, freq: float) -> Path:
    ext = {"ogg_opus": "opus"}.get(fmt, fmt)
    return write_part(tmp_path / f"{name}.{ext}", fmt, 24000, tone(freq, seconds, 24000))


def test_book_has_a_mark_per_chapter(tmp_path: Path) -> None:
    chapters = [
        (_chapter(tmp_path, "ch1", "mp3", 2.5, 400.0), "第一回"),
        (_chapter(tmp_path, "ch2", "wav", 1.75, 800.0), "Two"),
        (_chapter(tmp_path, "ch3", "ogg_opus", 3.0, 1200.0), "Three"),
    ]
    out = build_book(chapters, tmp_path / "book.m4b", title="The Book", artist="Voice")
    assert out == tmp_path / "book.m4b"
    with av.open(str(out)) as c:
        assert c.metadata.get("title") == "The Book" and c.metadata.get("artist") == "Voice"
        assert c.streams.audio[0].codec_context.name == "aac"
        marks = c.chapters()
    assert [m["metadata"]["title"] for m in marks] == ["第一回", "Two", "Three"]
    starts = [float(m["start"] * Fraction(m["time_base"] or 1)) for m in marks]
    assert starts == pytest.approx([0.0, 2.5, 4.25], abs=0.002)
    samples, rate = decode(out)
    for start, freq in zip(starts, (400.0, 800.0, 1200.0), strict=True):
        window = samples[round((start + 0.3) * rate) : round((start + 1.3) * rate)]
        assert dominant_frequency(window, rate) == pytest.approx(freq, abs=10)


def test_pcm_chapters_need_their_rate(tmp_path: Path) -> None:
    pcm = write_part(tmp_path / "ch.pcm", "pcm", 16000, tone(500.0, 1.0, 16000))
    with pytest.raises(AudioError, match="pcm_sample_rate"):
        build_book([(pcm, "One")], tmp_path / "book.m4b")
    assert not (tmp_path / "book.m4b").exists()
    build_book([(pcm, "One")], tmp_path / "book.m4b", pcm_sample_rate=16000)
    with av.open(str(tmp_path / "book.m4b")) as c:
        assert len(c.chapters()) == 1


def test_a_broken_chapter_leaves_no_book(tmp_path: Path) -> None:
    good = _chapter(tmp_path, "ch1", "wav", 1.0, 400.0)
    bad = tmp_path / "ch2.mp3"
    bad.write_bytes(b"\xff\xfb" + bytes(300))
    with pytest.raises(AudioError):
        build_book([(good, "1"), (bad, "2")], tmp_path / "book.m4b")
    assert [p.name for p in tmp_path.iterdir()] != [] and not (tmp_path / "book.m4b").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".book")]
