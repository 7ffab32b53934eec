"""The chunk map: where each chunk is in a finished chapter file, ``<chapter>.chunks.json``.

Finishing writes it beside the chapter file (after the file got its final name, before the
finishing record: a crash between leaves no record, and the chapter is built again). ``check``
reads it to judge whole chunks, with their text, voice and speed, as the gate judged the
answers; subtitle cues, since they are cut at sentences and clauses, are not chunks.

For ``check`` the map comes from outside (a folder copied, edited, or made by someone else):
it is read bounded and validated field by field, and a map that does not describe the chapter
file beside it (another size) is not used. Standard library only: finishing imports it on the
way to the first request.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.fileio import atomic_write_text

if TYPE_CHECKING:
    from pipeline.audio.model import Cue
    from pipeline.planning import ChapterPlan

MAP_VERSION = 1
MAP_SUFFIX = ".chunks.json"
# Bounds of what is read: far above any real chapter (a 10-hour chapter of 1000-character
# chunks is about 6 MB), far below what could hurt.
MAX_MAP_BYTES = 64 << 20
MAX_CHUNKS = 200_000
MAX_TEXT = 100_000
MAX_NAME = 4096
MAX_SPEED = 10.0
# Cue times are whole milliseconds: chunk ends may touch within that.
_SLACK_S = 0.0015


class ChunkMapError(ValueError):
    """A chunk map that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class ChunkSource:
    """What the plan knows of a chunk beyond its audio: who spoke it, where its line is."""

    voice: str
    speed: float
    file: str | None
    file_line: int | None


@dataclass(frozen=True)
class MappedChunk:
    start_s: float
    end_s: float
    text: str
    line: str
    source: ChunkSource


@dataclass(frozen=True)
class ChunkMap:
    audio: str  # the chapter file's name
    audio_bytes: int  # its size when the map was written
    duration_s: float
    chunks: tuple[MappedChunk, ...]


def chunk_map_path(audio: Path) -> Path:
    """``ch01.mp3`` -> ``ch01.chunks.json``, in the same folder."""
    return audio.with_name(audio.stem + MAP_SUFFIX)


def chunk_sources(plan: ChapterPlan) -> tuple[ChunkSource, ...]:
    """Each chunk's voice, speed and source line, in the chapter's order."""
    lines = plan.chapter.lines
    return tuple(
        ChunkSource(
            c.params.voice_id,
            c.params.speed or 1.0,
            lines[c.line_index].file,
            lines[c.line_index].lineno,
        )
        for c in plan.chunks
    )


def _to_json(audio: Path, duration_s: float, chunks: Sequence[MappedChunk]) -> dict[str, Any]:
    return {
        "chunk_map": MAP_VERSION,
        "audio": {"name": audio.name, "bytes": os.stat(audio).st_size},
        "duration_s": round(duration_s, 3),
        "chunks": [
            {
                "start_s": round(c.start_s, 3),
                "end_s": round(c.end_s, 3),
                "text": c.text,
                "line": c.line,
                "voice": c.source.voice,
                "speed": c.source.speed,
                "file": c.source.file,
                "file_line": c.source.file_line,
            }
            for c in chunks
        ],
    }


def write_chunk_map(
    audio: Path, duration_s: float, cues: Sequence[Cue], sources: Sequence[ChunkSource]
) -> Path:
    """The map of ``audio`` (just written) from its cues, one per chunk; atomically."""
    if len(cues) != len(sources):
        raise ValueError(f"{len(cues)} cues for {len(sources)} chunks")
    chunks = [
        MappedChunk(c.start_s, c.end_s, c.text, c.line_id, s)
        for c, s in zip(cues, sources, strict=True)
    ]
    return _write(audio, duration_s, chunks)


def _write(audio: Path, duration_s: float, chunks: Sequence[MappedChunk]) -> Path:
    path = chunk_map_path(audio)
    text = json.dumps(_to_json(audio, duration_s, chunks), ensure_ascii=False, indent=0)
    atomic_write_text(path, text + "\n")
    return path


def keep_chunk_map(audio: Path, sources: Sequence[ChunkSource]) -> bool:
    """True when ``audio``'s map is there and describes it, its sources brought up to date.

    A re-run that keeps a chapter file keeps its map; only what the audio does not decide
    can have changed (a line moved in the job file), and that is rewritten. False (the
    caller builds the chapter again) when the map is missing, damaged or another file's:
    an output folder written before chunk maps existed, say.
    """
    try:
        found = read_chunk_map(chunk_map_path(audio), audio)
    except ChunkMapError:
        return False
    if found is None or len(found.chunks) != len(sources):
        return False
    if any(c.source != s for c, s in zip(found.chunks, sources, strict=True)):
        updated = [
            MappedChunk(c.start_s, c.end_s, c.text, c.line, s)
            for c, s in zip(found.chunks, sources, strict=True)
        ]
        _write(audio, found.duration_s, updated)
    return True


def read_chunk_map(path: Path, audio: Path) -> ChunkMap | None:
    """The map at ``path`` if it describes ``audio`` (same name and size), else None when
    there is none or it is another file's; ChunkMapError when it is not a valid map."""
    try:
        info = os.lstat(path)
        size = os.stat(audio).st_size
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ChunkMapError(f"{path.name}: cannot be read: {e.strerror or e}") from e
    if not stat.S_ISREG(info.st_mode):
        raise ChunkMapError(f"{path.name}: not a regular file")
    if info.st_size > MAX_MAP_BYTES:
        raise ChunkMapError(f"{path.name}: larger than {MAX_MAP_BYTES >> 20} MiB")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_MAP_BYTES + 1)
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ChunkMapError(f"{path.name}: not a chunk map: {e}") from e
    found = _parse(data, path.name)
    if found.audio != audio.name or found.audio_bytes != size:
        return None  # the chapter file was replaced since: the map says nothing of it
    return found


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number here")


def _parse(data: object, name: str) -> ChunkMap:
    where = _Where(name)
    top = where.obj(data, "the file")
    if top.get("chunk_map") != MAP_VERSION:
        raise where.error(f"chunk_map must be {MAP_VERSION} (written by another version?)")
    audio = where.obj(top.get("audio"), "audio")
    audio_name = where.text(audio.get("name"), "audio.name", MAX_NAME)
    audio_bytes = where.count(audio.get("bytes"), "audio.bytes")
    duration = where.seconds(top.get("duration_s"), "duration_s")
    items = top.get("chunks")
    if not isinstance(items, list) or not 0 < len(items) <= MAX_CHUNKS:
        raise where.error(f"chunks must be a list of 1 to {MAX_CHUNKS} chunks")
    chunks: list[MappedChunk] = []
    for index, item in enumerate(items):
        chunk = _chunk(where, where.obj(item, f"chunk {index}"), index)
        if chunk.end_s > duration + _SLACK_S:
            raise where.error(f"chunk {index} ends after the chapter's duration_s")
        if chunks and chunk.start_s < chunks[-1].end_s - _SLACK_S:
            raise where.error(f"chunk {index} starts before chunk {index - 1} ends")
        chunks.append(chunk)
    return ChunkMap(audio_name, audio_bytes, duration, tuple(chunks))


def _chunk(where: _Where, item: dict[str, Any], index: int) -> MappedChunk:
    at = f"chunk {index}"
    start = where.seconds(item.get("start_s"), f"{at}: start_s")
    end = where.seconds(item.get("end_s"), f"{at}: end_s")
    if end < start:
        raise where.error(f"{at}: end_s is before start_s")
    speed = item.get("speed")
    if isinstance(speed, bool) or not isinstance(speed, int | float):
        raise where.error(f"{at}: speed must be a number")
    if not 0 < speed <= MAX_SPEED:
        raise where.error(f"{at}: speed must be above 0 and at most {MAX_SPEED:g}")
    file = item.get("file")
    file_line = item.get("file_line")
    source = ChunkSource(
        where.text(item.get("voice"), f"{at}: voice", MAX_NAME),
        float(speed),
        None if file is None else where.text(file, f"{at}: file", MAX_NAME),
        None if file_line is None else where.count(file_line, f"{at}: file_line"),
    )
    text = where.text(item.get("text"), f"{at}: text", MAX_TEXT)
    line = where.text(item.get("line"), f"{at}: line", MAX_NAME)
    return MappedChunk(start, end, text, line, source)


@dataclass(frozen=True)
class _Where:
    """Checks of one map's fields, each failing with the file's name and the field's."""

    name: str

    def error(self, what: str) -> ChunkMapError:
        return ChunkMapError(f"{self.name}: {what}; delete it to check the chapter by its cues")

    def obj(self, value: object, what: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(f"{what} must be an object")
        return value

    def text(self, value: object, what: str, limit: int) -> str:
        if not isinstance(value, str) or len(value) > limit:
            raise self.error(f"{what} must be a string of at most {limit} characters")
        return value

    def count(self, value: object, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.error(f"{what} must be a whole number, 0 or more")
        return value

    def seconds(self, value: object, what: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(f"{what} must be a number of seconds")
        if not math.isfinite(value) or value < 0:
            raise self.error(f"{what} must be a finite number, 0 or more")
        return float(value)
