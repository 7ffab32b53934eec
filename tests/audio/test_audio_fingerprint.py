"""Incremental finishing: fingerprints of inputs, and records that tell when to skip."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from test_audio_support import tone, write_part

from pipeline.audio import BookInfo, ChapterSpec, Part, assemble_chapter
from pipeline.audio.fingerprint import (
    book_fingerprint,
    chapter_fingerprint,
    forget_output,
    is_up_to_date,
    record_output,
    sidecar_path,
)


def _spec(tmp_path: Path) -> ChapterSpec:
    a = write_part(tmp_path / "a.wav", "wav", 16000, tone(300.0, 1.0, 16000))
    b = write_part(tmp_path / "b.wav", "wav", 16000, tone(500.0, 1.0, 16000))
    cover = tmp_path / "cover.jpg"
    cover.write_bytes(b"\xff\xd8\xff" + bytes(10))
    return ChapterSpec(
        (Part(a, "One.", "l1", True, 300), Part(b, "Two.", "l2", True, 0)),
        "wav",
        16000,
        tmp_path / "out" / "ch.wav",
        subtitles=("srt",),
        book=BookInfo(title="T", cover=cover),
    )


def test_the_fingerprint_is_stable_and_sees_every_input(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    keys = ["k1", "k2"]
    base = chapter_fingerprint(spec, keys)
    assert base == chapter_fingerprint(spec, list(keys))
    changed = [
        chapter_fingerprint(spec, ["k2", "k1"]),
        chapter_fingerprint(spec, ["k1", "k3"]),
        chapter_fingerprint(
            dataclasses.replace(
                spec, parts=(dataclasses.replace(spec.parts[0], pause_after_ms=301), spec.parts[1])
            ),
            keys,
        ),
        chapter_fingerprint(dataclasses.replace(spec, output_format="mp3"), keys),
        chapter_fingerprint(dataclasses.replace(spec, loudness_lufs=-18.0), keys),
        chapter_fingerprint(dataclasses.replace(spec, subtitles=("srt", "vtt")), keys),
        chapter_fingerprint(dataclasses.replace(spec, book=BookInfo(title="U")), keys),
    ]
    assert base not in changed and len(set(changed)) == len(changed)
    assert spec.book is not None and spec.book.cover is not None
    spec.book.cover.write_bytes(b"\xff\xd8\xff" + bytes(11))  # a new picture, same name
    assert chapter_fingerprint(spec, keys) != base
    with pytest.raises(ValueError, match="1 cache keys for 2 parts"):
        chapter_fingerprint(spec, ["k1"])


def test_book_fingerprint_follows_its_chapters(tmp_path: Path) -> None:
    out = tmp_path / "book.m4b"
    base = book_fingerprint([("f1", "One"), ("f2", "Two")], out, None)
    assert base == book_fingerprint([("f1", "One"), ("f2", "Two")], out, None)
    assert base != book_fingerprint([("f1", "One"), ("f3", "Two")], out, None)
    assert base != book_fingerprint([("f1", "One"), ("f2", "Two")], out, BookInfo(author="A"))


def test_a_recorded_output_is_up_to_date_until_it_changes(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    fingerprint = chapter_fingerprint(spec, ["k1", "k2"])
    assert not is_up_to_date(spec.out_path, fingerprint)
    result = assemble_chapter(spec)
    record_output(result.path, fingerprint, result.subtitle_paths)
    assert is_up_to_date(result.path, fingerprint, result.subtitle_paths, verify_hash=True)
    assert not is_up_to_date(result.path, "other", result.subtitle_paths)
    assert not is_up_to_date(result.path, fingerprint)  # the subtitles are part of the record
    srt = result.subtitle_paths[0]
    srt.unlink()
    assert not is_up_to_date(result.path, fingerprint, result.subtitle_paths)


def test_a_touched_or_replaced_output_is_rebuilt(tmp_path: Path) -> None:
    out = tmp_path / "ch.mp3"
    out.write_bytes(b"audio")
    record_output(out, "fp")
    assert is_up_to_date(out, "fp")
    st = out.stat()
    os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert not is_up_to_date(out, "fp")
    record_output(out, "fp")
    # Same size and time, other bytes: only the hash check sees it.
    st = out.stat()
    out.write_bytes(b"AUDIO")
    os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert is_up_to_date(out, "fp")
    assert not is_up_to_date(out, "fp", verify_hash=True)
    target = tmp_path / "elsewhere.mp3"
    out.rename(target)
    out.symlink_to(target)
    assert not is_up_to_date(out, "fp")


@pytest.mark.parametrize(
    "content",
    ["", "{", "[]", '{"fingerprint": "fp"}', '{"fingerprint": "fp", "files": [{"x": 1}]}'],
)
def test_a_damaged_record_means_rebuild(tmp_path: Path, content: str) -> None:
    out = tmp_path / "ch.mp3"
    out.write_bytes(b"audio")
    sidecar_path(out).write_text(content)
    assert not is_up_to_date(out, "fp")
    forget_output(out)
    assert not sidecar_path(out).exists()
    forget_output(out)  # nothing to forget is fine
