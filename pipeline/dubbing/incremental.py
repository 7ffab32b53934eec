"""Incremental dubbing: a timed track, its subtitles and its clips are kept from an earlier run
when their inputs hash as recorded and their files are as written then.

The track's inputs are every line's chunk cache keys (they stand for the audio), cue times,
text, fit settings and the speed of any faster second request, with the output options
(formats, tags, subtitle kinds). Its record is the chapter's usual ``.<track>.finish.json``
(so ``book`` and ``forget_output`` treat it like any chapter's) plus each line's result, so
that a kept track reports the same stretches, overflows and overlaps.

A clip's inputs are its line's: keys, text and id, fit, and its slot when it is stretched;
its name is the key of its record. The records of a chapter's clips are one file,
``<chapter id>/.clips.finish.json``, saved when the chapter is done and also when it is
stopped, so a stopped run keeps the clips it had finished. A clip whose line changed is the
only clip rebuilt.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pipeline.audio.fingerprint import (
    FINISHING_VERSION,
    FileState,
    is_up_to_date,
    sidecar_path,
)
from pipeline.dubbing.model import DubLine, DubSpec, LineResult
from pipeline.fileio import atomic_write_text

# Part of every dubbing fingerprint, beside FINISHING_VERSION: bump it when a track or a
# clip would be written differently from the same inputs.
DUBBING_VERSION = 1
CLIP_RECORD = ".clips.finish.json"


def _digest(payload: dict[str, Any]) -> str:
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _known(lines: Sequence[DubLine]) -> bool:
    return all(len(line.keys) == len(line.paths) for line in lines)


def _audio_options(spec: DubSpec, output_format: str) -> dict[str, Any]:
    return {
        "version": [FINISHING_VERSION, DUBBING_VERSION],
        "response_format": spec.response_format,
        "sample_rate": spec.sample_rate,
        "output_format": output_format,
    }


def track_fingerprint(
    spec: DubSpec, lines: Sequence[DubLine], output_format: str
) -> str | None:
    """The hash of everything that decides the timed track and its subtitles; None when a
    line's cache keys are unknown (then nothing is kept)."""
    if spec.track_path is None or not _known(lines):
        return None
    rows = [
        [ln.id, ln.text, ln.start, ln.end, list(ln.keys), ln.fit, ln.max_speed, ln.speed,
         ln.refit]
        for ln in lines
    ]
    return _digest(
        {
            **_audio_options(spec, output_format),
            "kind": "dub-track",
            "name": spec.track_path.name,
            "lines": rows,
            "tags": sorted(spec.metadata.items()),
            "subtitles": list(spec.subtitles),
        }
    )


def clip_fingerprint(
    spec: DubSpec, line: DubLine, slot: float | None, output_format: str
) -> str | None:
    """The hash of what decides ``line``'s clip; ``slot`` matters only to a stretched line."""
    if len(line.keys) != len(line.paths):
        return None
    stretched = line.fit == "stretch" and line.start is not None
    return _digest(
        {
            **_audio_options(spec, output_format),
            "kind": "dub-clip",
            "line": [line.id, line.text, list(line.keys), line.fit, line.max_speed, line.speed,
                     line.refit],
            "slot": slot if stretched else None,
        }
    )


def kept_track(
    track: Path, fingerprint: str, subtitles: Sequence[Path], count: int
) -> tuple[float, list[LineResult]] | None:
    """The duration and line results recorded for ``track`` when it and ``subtitles`` are
    as recorded for ``fingerprint`` (``count`` lines); None: build it again."""
    if not is_up_to_date(track, fingerprint, subtitles):
        return None
    try:
        record = json.loads(sidecar_path(track).read_text(encoding="utf-8"))
        duration = float(record["duration_s"])
        results = [LineResult(**fields) for fields in record["lines"]]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return (duration, results) if len(results) == count else None


def record_track(
    track: Path,
    fingerprint: str,
    subtitles: Sequence[Path],
    duration_s: float,
    results: Sequence[LineResult],
) -> None:
    """Record ``track`` and ``subtitles`` as built from ``fingerprint``, with what the lines
    became (the same record ``is_up_to_date`` reads for any chapter, and a ``lines`` list)."""
    files = [asdict(FileState.of(p)) for p in (track, *subtitles)]
    record = {
        "fingerprint": fingerprint,
        "files": files,
        "duration_s": duration_s,
        "lines": [asdict(r) for r in results],
    }
    atomic_write_text(sidecar_path(track), json.dumps(record, indent=1) + "\n")


class ClipRecords:
    """The records of one chapter's clips: name -> (fingerprint, file state, duration)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._old: dict[str, dict[str, Any]] = {}
        self._new: dict[str, dict[str, Any]] = {}
        try:
            record = json.loads((folder / CLIP_RECORD).read_text(encoding="utf-8"))
            clips = record["clips"] if record.get("version") == DUBBING_VERSION else {}
            self._old = {k: v for k, v in clips.items() if isinstance(v, dict)}
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            pass  # no record, or not one we wrote: every clip is built again
        self._loaded = dict(self._old)

    def kept(self, name: str, fingerprint: str | None) -> float | None:
        """The recorded duration of clip ``name`` if it is as built from ``fingerprint``."""
        entry = self._old.get(name)
        if fingerprint is None or entry is None or entry.get("fingerprint") != fingerprint:
            return None
        try:
            state = FileState(**entry["file"])
            duration = float(entry["duration_s"])
        except (TypeError, KeyError, ValueError):
            return None
        if state.name != name or not state.matches(self.folder / name, verify_hash=False):
            return None
        self._new[name] = entry
        return duration

    def note(self, name: str, fingerprint: str | None, duration_s: float) -> None:
        """Clip ``name`` was just written from ``fingerprint``."""
        self._old.pop(name, None)
        if fingerprint is None:
            return
        state = FileState.of(self.folder / name)
        self._new[name] = {"fingerprint": fingerprint, "file": asdict(state),
                           "duration_s": duration_s}

    def save(self) -> None:
        """Write the records: the clips kept or written now, and those this run did not reach
        (a stopped run); nothing when they are as loaded, so a kept chapter writes no file."""
        clips = {**self._old, **self._new}
        if clips == self._loaded:
            return
        record = {"version": DUBBING_VERSION, "clips": clips}
        atomic_write_text(self.folder / CLIP_RECORD, json.dumps(record, indent=0) + "\n")
