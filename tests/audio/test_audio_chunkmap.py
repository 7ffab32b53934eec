"""The chunk map beside a chapter file: written by finishing, read (warily) by ``check``."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest
from test_audio_support import tone, write_part

from pipeline.audio import ChapterSpec, Part
from pipeline.audio.chunkmap import (
    MAX_MAP_BYTES,
    ChunkMapError,
    ChunkSource,
    chunk_map_path,
    read_chunk_map,
)
from pipeline.audio.fingerprint import forget_output, record_output, sidecar_path
from pipeline.finishing import finish_chapter

RATE = 16000
SOURCES = (
    ChunkSource("voice-a", 1.0, "book.yaml", 4),
    ChunkSource("voice-a", 1.0, "book.yaml", 4),
    ChunkSource("voice-b", 1.25, "book.yaml", 5),
)


def _spec(tmp_path: Path, fmt: str = "wav") -> ChapterSpec:
    ext = {"wav": "wav", "mp3": "mp3"}[fmt]
    parts = []
    for index, (seconds, text) in enumerate(((1.0, "One, two."), (0.5, "Three."), (1.5, "Four"))):
        path = write_part(tmp_path / f"p{index}.{ext}", fmt, RATE, tone(300.0, seconds, RATE))
        parts.append(Part(path, text, f"l{index // 2 + 1}", index != 0, 300 if index else 0))
    return ChapterSpec(tuple(parts), fmt, RATE, tmp_path / "out" / "ch.wav", subtitles=("srt",))


def _finish(spec: ChapterSpec, sources: tuple[ChunkSource, ...] = SOURCES) -> Any:
    keys = tuple(f"{i:064x}" for i in range(len(spec.parts)))
    return finish_chapter(spec, keys, sources=sources)


@pytest.mark.parametrize("fmt", ["wav", "mp3"])
def test_finishing_writes_where_each_chunk_is(tmp_path: Path, fmt: str) -> None:
    spec = _spec(tmp_path, fmt)
    spec = dataclasses.replace(spec, out_path=tmp_path / "out" / f"ch.{fmt}")
    (tmp_path / "out").mkdir()
    result = _finish(spec)
    path = chunk_map_path(result.path)
    assert path.name == "ch.chunks.json"
    found = read_chunk_map(path, result.path)
    assert found is not None and found.audio == result.path.name
    assert [c.text for c in found.chunks] == ["One, two.", "Three.", "Four"]
    assert [c.line for c in found.chunks] == ["l1", "l1", "l2"]
    assert [c.source for c in found.chunks] == list(SOURCES)
    lengths = [c.end_s - c.start_s for c in found.chunks]
    # Each chunk's own audio, to a millisecond in wav; an mp3 join keeps encoder delay and
    # padding and shortens the pauses to whole frames (1152 samples: 72 ms at 16 kHz).
    frame = 0.072 if fmt == "mp3" else 0.001
    assert lengths == pytest.approx([1.0, 0.5, 1.5], abs=frame)
    # The pause after the second chunk lies between it and the third.
    assert found.chunks[2].start_s - found.chunks[1].end_s == pytest.approx(0.3, abs=frame)
    assert found.duration_s == pytest.approx(result.duration_s, abs=0.001)


def test_a_kept_chapter_keeps_its_map_and_one_without_it_is_built_again(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    (tmp_path / "out").mkdir()
    first = _finish(spec)
    assert not first.reused
    assert _finish(spec).reused
    # A line moved in the job file: the audio is the same, the map says where it is now.
    moved = (*SOURCES[:2], ChunkSource("voice-b", 1.25, "book.yaml", 9))
    assert _finish(spec, moved).reused
    found = read_chunk_map(chunk_map_path(first.path), first.path)
    assert found is not None and found.chunks[2].source.file_line == 9
    # An output folder from before chunk maps: the chapter is built again, once.
    chunk_map_path(first.path).unlink()
    again = _finish(spec, moved)
    assert not again.reused and chunk_map_path(first.path).is_file()
    assert _finish(spec, moved).reused
    # A damaged map is not trusted either.
    chunk_map_path(first.path).write_text("{", encoding="utf-8")
    assert not _finish(spec, moved).reused


def test_a_map_of_another_file_is_not_used(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    (tmp_path / "out").mkdir()
    result = _finish(spec)
    path = chunk_map_path(result.path)
    with open(result.path, "ab") as f:
        f.write(bytes(2))  # the chapter replaced by something else, its map left
    assert read_chunk_map(path, result.path) is None
    forget_output(result.path)
    path.unlink()
    assert read_chunk_map(path, result.path) is None  # no map: nothing to say


def _written(tmp_path: Path) -> tuple[Path, Path, dict[str, Any]]:
    spec = _spec(tmp_path)
    (tmp_path / "out").mkdir()
    result = _finish(spec)
    path = chunk_map_path(result.path)
    return result.path, path, json.loads(path.read_text(encoding="utf-8"))


def _chunk(data: dict[str, Any], **fields: object) -> dict[str, Any]:
    data["chunks"][1].update(fields)
    return data


BAD_MAPS = [
    (lambda d: {**d, "chunk_map": 2}, "chunk_map must be 1"),
    (lambda d: {**d, "chunks": []}, "chunks must be a list"),
    (lambda d: {**d, "chunks": {"0": 1}}, "chunks must be a list"),
    (lambda d: [d], "the file must be an object"),
    (lambda d: {**d, "audio": "ch.wav"}, "audio must be an object"),
    (lambda d: _chunk(d, start_s=-1.0), "chunk 1: start_s must be a finite number, 0 or more"),
    (lambda d: _chunk(d, end_s="1e999"), "chunk 1: end_s must be a finite number"),
    (lambda d: _chunk(d, end_s=0.0), "end_s is before start_s"),
    (lambda d: _chunk(d, start_s=0.1), "chunk 1 starts before chunk 0 ends"),
    (lambda d: _chunk(d, end_s=999.0), "ends after the chapter's duration_s"),
    (lambda d: _chunk(d, speed=True), "speed must be a number"),
    (lambda d: _chunk(d, speed=0), "speed must be above 0"),
    (lambda d: _chunk(d, text=None), "chunk 1: text must be a string"),
    (lambda d: _chunk(d, text="x" * 100_001), "chunk 1: text must be a string"),
    (lambda d: _chunk(d, file_line=-3), "file_line must be a whole number"),
    (lambda d: _chunk(d, voice=["v"]), "voice must be a string"),
]


@pytest.mark.parametrize(("damage", "message"), BAD_MAPS)
def test_a_map_from_outside_is_checked_field_by_field(
    tmp_path: Path, damage: Any, message: str
) -> None:
    audio, path, data = _written(tmp_path)
    # A number too big for a float reads as infinity (json.dumps would write Infinity).
    path.write_text(json.dumps(damage(data)).replace('"1e999"', "1e999"), encoding="utf-8")
    with pytest.raises(ChunkMapError, match=message) as caught:
        read_chunk_map(path, audio)
    assert str(caught.value).startswith("ch.chunks.json: ")
    assert "delete it" in str(caught.value)


def test_a_map_that_is_not_json_a_link_or_too_big(tmp_path: Path) -> None:
    audio, path, data = _written(tmp_path)
    path.write_text(json.dumps(data).replace('"speed": 1.0', '"speed": NaN'), encoding="utf-8")
    with pytest.raises(ChunkMapError, match="NaN is not a number here"):
        read_chunk_map(path, audio)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ChunkMapError, match="not a chunk map"):
        read_chunk_map(path, audio)
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps(data), encoding="utf-8")
    path.unlink()
    os.symlink(elsewhere, path)
    with pytest.raises(ChunkMapError, match="not a regular file"):
        read_chunk_map(path, audio)
    path.unlink()
    with open(path, "wb") as f:
        f.truncate(MAX_MAP_BYTES + 1)  # sparse: no disk used
    with pytest.raises(ChunkMapError, match="larger than 64 MiB"):
        read_chunk_map(path, audio)


def test_no_sources_no_map(tmp_path: Path) -> None:
    """Callers that know nothing of the plan (benchmarks, tools) get the chapter alone."""
    spec = _spec(tmp_path)
    (tmp_path / "out").mkdir()
    keys = tuple(f"{i:064x}" for i in range(len(spec.parts)))
    result = finish_chapter(spec, keys)
    assert not chunk_map_path(result.path).exists() and sidecar_path(result.path).is_file()
    assert finish_chapter(spec, keys).reused
    record_output(result.path, "another fingerprint")
    assert not finish_chapter(spec, keys).reused
