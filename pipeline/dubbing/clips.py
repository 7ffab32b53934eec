"""Clips: every line of a chapter as its own file in ``<out>/<chapter id>/``, and clips.csv.

A clip is named by its line id (``cue-0001.wav``) and is the line's chunks joined by the
chapter assembly itself (lossless when the format is the API's), or the stretched samples
when the line was time-stretched to fit. ``clips.csv`` (RFC 4180: CRLF, quotes doubled) lists
line_id, file, start, end, duration, speaker and text, for editors and scripts. Every file
is written whole (temp file + rename); the folder is never a link followed. A clip recorded
as built from the same inputs (``incremental``) and still intact is kept, not written again.
"""

from __future__ import annotations

import csv
import errno
import io
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

from pipeline.audio import ChapterSpec, Part, assemble_chapter
from pipeline.dubbing.incremental import ClipRecords
from pipeline.dubbing.lineaudio import Block, encode_blocks
from pipeline.dubbing.model import DubLine, LineResult
from pipeline.fileio import atomic_path, atomic_write_text, make_dirs, refused

CLIPS_CSV = "clips.csv"
CSV_HEADER = ("line_id", "file", "start", "end", "duration", "speaker", "text")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def clip_stem(line_id: str) -> str:
    """A file name for ``line_id``: ASCII letters, digits, '.', '_' and '-' only."""
    stem = _UNSAFE.sub("_", line_id)
    return f"_{stem}" if stem.startswith(".") or not stem else stem


def clip_folder(out_dir: Path, chapter_id: str) -> Path:
    """``<out>/<chapter id>``, made if missing; refused when a link or a file is there."""
    folder = out_dir / chapter_id
    if folder.is_symlink():
        raise refused(folder, "a symbolic link", errno.ELOOP)
    make_dirs(folder)
    return folder


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


class ClipWriter:
    """Writes the clips of one chapter as its lines come, then clips.csv."""

    def __init__(
        self, folder: Path, response_format: str, sample_rate: int, output_format: str,
        extension: str, rate: int, layout: str,
    ) -> None:
        self.folder = folder
        self.response_format = response_format
        self.sample_rate = sample_rate
        self.output_format = output_format
        self.extension = extension
        self.rate = rate
        self.layout = layout
        self.rows: list[tuple[str, ...]] = []
        self.names: set[str] = set()
        self.records = ClipRecords(folder)
        self.reused = 0  # clips kept from an earlier run

    def _name(self, line_id: str) -> str:
        stem = clip_stem(line_id)
        name, n = f"{stem}.{self.extension}", 1
        while name.lower() in self.names:  # two ids made the same name, or case twins
            n += 1
            name = f"{stem}~{n}.{self.extension}"
        self.names.add(name.lower())
        return name

    def add(
        self,
        line: DubLine,
        result: LineResult | None,
        samples: Block | None,
        fingerprint: str | None = None,
        stretched: Callable[[], Block | None] | None = None,
    ) -> float:
        """Write ``line``'s clip (``samples`` when stretched, else ``stretched()`` if given)
        unless the one recorded for ``fingerprint`` is intact; its duration in seconds."""
        name = self._name(line.id)
        duration = self.records.kept(name, fingerprint)
        if duration is not None:
            self.reused += 1
        else:
            if samples is None and stretched is not None:
                samples = stretched()
            duration = self._write(self.folder / name, line, samples)
            if result is not None:
                duration = result.final_s  # the decoded length, the one the track used
            self.records.note(name, fingerprint, duration)
        self.rows.append(
            (line.id, name, _seconds(line.start), _seconds(line.end), _seconds(duration),
             line.speaker or "", line.text)
        )
        return duration

    def _write(self, path: Path, line: DubLine, samples: Block | None) -> float:
        if samples is not None:
            with atomic_path(path) as tmp:
                encode_blocks([samples], tmp, self.output_format, self.rate, self.layout)
            return float(samples.shape[1]) / self.rate
        parts = tuple(Part(p, line.text, line.id, end_of_line=False) for p in line.paths)
        spec = ChapterSpec(
            parts=parts,
            response_format=self.response_format,
            sample_rate=self.sample_rate,
            out_path=path,
            output_format=self.output_format,
            title=line.id,
        )
        return assemble_chapter(spec).duration_s

    def finish(self) -> Path:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(CSV_HEADER)
        writer.writerows(self.rows)
        path = self.folder / CLIPS_CSV
        text = buffer.getvalue()
        if not _holds(path, text):  # an unchanged list is not written again
            atomic_write_text(path, text)
        return path


def _holds(path: Path, text: str) -> bool:
    """True when ``path`` is a regular file whose content is ``text`` (UTF-8)."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        return path.read_bytes() == text.encode("utf-8")
    except OSError:
        return False


def relative(path: Path, out_dir: Path) -> str:
    return os.path.relpath(path, out_dir).replace(os.sep, "/")
