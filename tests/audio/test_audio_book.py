"""The m4b book: AAC, a chapter mark per chapter at the right time, title and artist."""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from mutagen.id3 import ID3
from mutagen.mp4 import MP4
from test_audio_support import calls, decode, dominant_frequency, tone, write_part

from pipeline.audio import (
    AudioError,
    BookInfo,
    ChapterSpec,
    Part,
    assemble_chapter,
    bookcores,
    build_book,
    procs,
)


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


def _png(path: Path) -> Path:
    """A valid 2x2 RGB PNG, made by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
    path.write_bytes(data + chunk(b"IEND", b""))
    return path


def _info(tmp_path: Path) -> BookInfo:
    return BookInfo(
        title="A Study in Scarlet",
        author="Arthur Conan Doyle",
        narrator="Local Voice",
        year="1887",
        description="The first Holmes novel.",
        language="en",
        cover=_png(tmp_path / "cover.png"),
    )


def test_m4b_carries_the_book_info_and_cover_and_marks(tmp_path: Path) -> None:
    chapters = [
        (_chapter(tmp_path, "ch1", "wav", 1.5, 400.0), "One"),
        (_chapter(tmp_path, "ch2", "wav", 1.0, 800.0), "Two"),
    ]
    info = _info(tmp_path)
    out = build_book(chapters, tmp_path / "book.m4b", title="ignored", info=info)
    tags = MP4(str(out)).tags
    assert tags is not None
    assert tags["©nam"] == ["A Study in Scarlet"] and tags["©alb"] == ["A Study in Scarlet"]
    assert tags["©ART"] == ["Arthur Conan Doyle"] and tags["©wrt"] == ["Local Voice"]
    assert tags["©day"] == ["1887"] and tags["desc"] == ["The first Holmes novel."]
    assert bytes(tags["----:com.apple.iTunes:LANGUAGE"][0]) == b"en"
    assert bytes(tags["covr"][0]) == info.cover.read_bytes()  # type: ignore[union-attr]
    with av.open(str(out)) as c:
        assert c.metadata.get("title") == "A Study in Scarlet"
        assert c.metadata.get("artist") == "Arthur Conan Doyle"
        covers = [s for s in c.streams.video if s.disposition & av.stream.Disposition.attached_pic]
        assert len(covers) == 1 and covers[0].codec_context.name == "png"
        marks = c.chapters()
    assert [m["metadata"]["title"] for m in marks] == ["One", "Two"]
    starts = [float(m["start"] * Fraction(m["time_base"] or 1)) for m in marks]
    assert starts == pytest.approx([0.0, 1.5], abs=0.002)


def test_mp3_book_has_id3_chapters(tmp_path: Path) -> None:
    chapters = [
        (_chapter(tmp_path, "ch1", "wav", 1.25, 400.0), "第一回"),
        (_chapter(tmp_path, "ch2", "wav", 2.0, 800.0), "Two"),
    ]
    out = build_book(chapters, tmp_path / "book.mp3", info=_info(tmp_path))
    tags = ID3(str(out))
    assert str(tags["TIT2"]) == "A Study in Scarlet" and str(tags["TALB"]) == "A Study in Scarlet"
    assert str(tags["TPE1"]) == "Arthur Conan Doyle" and str(tags["TCOM"]) == "Local Voice"
    assert str(tags["TDRC"]) == "1887" and tags.getall("COMM")[0].text == [
        "The first Holmes novel."
    ]
    assert tags.getall("APIC")[0].mime == "image/png"
    toc = tags.getall("CTOC")[0]
    assert toc.child_element_ids == ["ch1", "ch2"]
    chaps = sorted(tags.getall("CHAP"), key=lambda f: f.start_time)
    assert [(c.start_time, c.end_time) for c in chaps] == [(0, 1250), (1250, 3250)]
    assert [str(c.sub_frames["TIT2"]) for c in chaps] == ["第一回", "Two"]
    samples, rate = decode(out)
    assert len(samples) / rate == pytest.approx(3.25, abs=0.06)


@pytest.mark.parametrize("fmt", ["mp3", "m4a"])
def test_chapter_files_carry_the_book_info(tmp_path: Path, fmt: str) -> None:
    part = Part(_chapter(tmp_path, "p", "mp3", 1.0, 500.0), "Hello.", "l1", True, 0)
    spec = ChapterSpec(
        (part,),
        "mp3",
        24000,
        tmp_path / f"c.{fmt}",
        output_format=fmt,
        title="Chapter One",
        track=3,
        book=_info(tmp_path),
    )
    path = assemble_chapter(spec).path
    if fmt == "mp3":
        tags = ID3(str(path))
        assert str(tags["TIT2"]) == "Chapter One" and str(tags["TALB"]) == "A Study in Scarlet"
        assert str(tags["TRCK"]) == "3" and tags.getall("APIC")
    else:
        mp4 = MP4(str(path)).tags
        assert mp4 is not None and mp4["©nam"] == ["Chapter One"] and mp4["covr"]
    with av.open(str(path)) as c:
        assert c.metadata.get("album") == "A Study in Scarlet"


def test_a_bad_cover_is_refused_before_encoding(tmp_path: Path) -> None:
    bad = tmp_path / "cover.gif"
    bad.write_bytes(b"GIF89a" + bytes(20))
    chapter = _chapter(tmp_path, "ch1", "wav", 0.5, 400.0)
    with pytest.raises(AudioError, match="cover.gif: the cover image must be a JPEG or PNG"):
        build_book([(chapter, "1")], tmp_path / "book.m4b", info=BookInfo(cover=bad))
    assert not (tmp_path / "book.m4b").exists()


def _book_chapters(tmp_path: Path) -> list[tuple[Path, str]]:
    made = []
    for i, (freq, seconds) in enumerate(((300.0, 31.0), (500.0, 17.5), (700.0, 42.25))):
        samples = tone(freq, seconds, 24000, amplitude=0.2 + 0.1 * i)
        made.append((write_part(tmp_path / f"ch{i}.mp3", "mp3", 24000, samples), f"Chapter {i}"))
    return made


def _marks(path: Path) -> list[tuple[int, int, str]]:
    with av.open(str(path)) as c:
        return [(m["start"], m["end"], str(m["metadata"]["title"])) for m in c.chapters()]


def test_a_book_in_pieces_is_one_encoders_book(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chapters = _book_chapters(tmp_path)
    one = build_book(chapters, tmp_path / "one.m4b")
    monkeypatch.setattr(bookcores, "workers", lambda: 4)
    monkeypatch.setattr(bookcores, "_LEAST_PIECE_S", 5.0)
    used = calls(monkeypatch)
    monkeypatch.setattr(procs, "PROCESSES_FROM_BYTES", 1 << 60)
    threads = build_book(chapters, tmp_path / "threads.m4b")
    monkeypatch.setattr(procs, "PROCESSES_FROM_BYTES", 0)
    processes = build_book(chapters, tmp_path / "processes.m4b")
    assert used == ["run_on_cores"] * 2 + ["run_in_processes"] * 2
    assert processes.read_bytes() == threads.read_bytes()
    single, _ = decode(one)
    pieces, _ = decode(threads)
    # Every sample, and the seams (cut at whole frames, with a pre-roll) leave no trace: the
    # encoders' rounding is 80 dB down (a piece one frame off would be about 0 dB).
    assert len(pieces) == len(single)
    difference = float(np.sum((single - pieces) ** 2))
    assert difference <= float(np.sum(single**2)) * 1e-7
    assert _marks(threads) == _marks(one)
    assert [title for _, _, title in _marks(one)] == ["Chapter 0", "Chapter 1", "Chapter 2"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
