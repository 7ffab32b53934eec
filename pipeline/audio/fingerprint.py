"""Incremental finishing: a fingerprint of a chapter's (or book's) inputs, and a sidecar record.

A re-run that would build the same file again can skip it when two things hold: the inputs
hash to the fingerprint recorded when the file was written, and the file is still the one
written then (same size and modification time, and optionally the same SHA-256). The record
is a small JSON file beside the output, ``.<name>.finish.json``, written after the output got
its final name: a crash between the two leaves no record, so the next run rebuilds.

``FINISHING_VERSION`` is part of every fingerprint: bump it whenever finishing would write
different bytes for the same inputs (a new limiter, new subtitle rules), so old outputs are
rebuilt rather than trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline.audio.model import BookInfo, ChapterSpec
from pipeline.fileio import atomic_write_text

FINISHING_VERSION = 4  # 3: mp3 chapters in pieces (LAME q7, no reservoir); 4: float32 limiter
_HASH_BLOCK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _book_fields(info: BookInfo | None) -> dict[str, Any] | None:
    if info is None:
        return None
    fields = asdict(info)
    # The cover's content, not its name: a new picture under the same name is a change.
    fields["cover"] = file_sha256(info.cover) if info.cover is not None else None
    return fields


def _digest(payload: dict[str, Any]) -> str:
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def chapter_fingerprint(spec: ChapterSpec, part_keys: Sequence[str]) -> str:
    """The hash of everything that decides a chapter's files.

    ``part_keys`` are the parts' chunk cache keys, in order (they stand for the audio);
    the rest comes from ``spec``: texts and pauses, formats, loudness, tags, subtitles.
    """
    if len(part_keys) != len(spec.parts):
        raise ValueError(f"{len(part_keys)} cache keys for {len(spec.parts)} parts")
    parts = [
        [key, p.text, p.line_id, p.end_of_line, p.pause_after_ms]
        for key, p in zip(part_keys, spec.parts, strict=True)
    ]
    return _digest(
        {
            "version": FINISHING_VERSION,
            "kind": "chapter",
            "name": spec.out_path.name,
            "parts": parts,
            "response_format": spec.response_format,
            "sample_rate": spec.sample_rate,
            "output_format": spec.output_format,
            "loudness_lufs": spec.loudness_lufs,
            "tags": [spec.title, spec.album, spec.track],
            "subtitles": list(spec.subtitles),
            "book": _book_fields(spec.book),
        }
    )


def book_fingerprint(
    chapters: Sequence[tuple[str, str]], out_path: Path, info: BookInfo | None
) -> str:
    """The hash of a book's inputs: (chapter fingerprint, chapter title) in order, its tags."""
    return _digest(
        {
            "version": FINISHING_VERSION,
            "kind": "book",
            "name": out_path.name,
            "chapters": [list(c) for c in chapters],
            "book": _book_fields(info),
        }
    )


@dataclass(frozen=True)
class FileState:
    """What a written file looked like: name, size, modification time, content hash."""

    name: str
    size: int
    mtime_ns: int
    sha256: str

    @classmethod
    def of(cls, path: Path) -> FileState:
        st = os.stat(path)
        return cls(path.name, st.st_size, st.st_mtime_ns, file_sha256(path))

    def matches(self, path: Path, *, verify_hash: bool) -> bool:
        try:
            st = os.lstat(path)
        except OSError:
            return False
        if not stat.S_ISREG(st.st_mode):  # a symlink or anything else put there since
            return False
        if (st.st_size, st.st_mtime_ns) != (self.size, self.mtime_ns):
            return False
        return not verify_hash or file_sha256(path) == self.sha256


def sidecar_path(output: Path) -> Path:
    return output.with_name(f".{output.name}.finish.json")


def record_output(
    output: Path,
    fingerprint: str,
    companions: Sequence[Path] = (),
    *,
    duration_s: float | None = None,
) -> None:
    """Record ``output`` (and its subtitle files) as built from ``fingerprint``.

    ``duration_s`` is kept so that a skipped chapter still reports its length.
    """
    files = [FileState.of(p) for p in (output, *companions)]
    record: dict[str, Any] = {"fingerprint": fingerprint, "files": [asdict(f) for f in files]}
    if duration_s is not None:
        record["duration_s"] = duration_s
    atomic_write_text(sidecar_path(output), json.dumps(record, indent=1) + "\n")


def recorded_duration(output: Path) -> float | None:
    """The ``duration_s`` recorded for ``output``, None when there is none."""
    try:
        value = json.loads(sidecar_path(output).read_text(encoding="utf-8")).get("duration_s")
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


def is_up_to_date(
    output: Path,
    fingerprint: str,
    companions: Sequence[Path] = (),
    *,
    verify_hash: bool = False,
) -> bool:
    """True when ``output`` and ``companions`` are as recorded for ``fingerprint``.

    Size and modification time by default (cheap); ``verify_hash`` also reads every file.
    Any missing, unreadable or foreign record means False: rebuild.
    """
    try:
        record = json.loads(sidecar_path(output).read_text(encoding="utf-8"))
        if not isinstance(record, dict) or record.get("fingerprint") != fingerprint:
            return False
        files = [FileState(**f) for f in record["files"]]
    except (OSError, ValueError, TypeError, KeyError):
        return False
    expected = [p.name for p in (output, *companions)]
    if [f.name for f in files] != expected:
        return False
    paths = (output, *companions)
    return all(f.matches(p, verify_hash=verify_hash) for f, p in zip(files, paths, strict=True))


def forget_output(output: Path) -> None:
    """Drop the record (before rebuilding, so a failed rebuild is never taken as done)."""
    sidecar_path(output).unlink(missing_ok=True)
