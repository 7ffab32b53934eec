"""Decoded samples kept on disk between a chapter's two passes, so each part is decoded once.

The first pass (measuring) decodes every part; the second (limiting and encoding) needs the
same samples again, and decoding them twice was a tenth of an mp3 chapter's CPU. Each group
of parts appends its samples to its own temp file beside the output (float32, exactly what
the decoder gave, so the chapter is the same as when decoding again); the second pass reads
any range back with ``pread``. The files are named, not anonymous, because the passes may
run in other processes; their names are the project's temp names (``fileio``), so a file
left by a killed run is removed with the other leftovers.

A spill that cannot be written is dropped and the second pass decodes those parts again:
the spill saves time, it is never needed. It is dropped too before it leaves the disk with
less than ``_RESERVE`` free (it takes 4 bytes a sample: 260 MB for 45 minutes at 24 kHz),
so that it never makes a chapter, a cache entry or a report fail for want of space.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.audio.model import AudioError
from pipeline.audio.process import Block
from pipeline.errors import StorageError
from pipeline.fileio import new_temp_beside

_BYTES = 4  # float32
_READ_SAMPLES = 16_384  # a block read back: about what the decoder hands out
_WRITE_BUFFER = 1 << 20
_RESERVE = 1 << 30  # free bytes a spill never takes the disk below
_CHECK_EVERY = 16 << 20  # bytes written between two looks at the free space
_OPEN_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC


def new_spills(beside: Path, count: int) -> list[Path | None]:
    """``count`` new, empty spill files beside ``beside`` (the chapter's temp file); None for
    one that could not be made (its parts are decoded twice, as without a spill)."""
    return _new_temps(beside, "spill", count, needed=False)


def new_piece_files(beside: Path, count: int) -> list[Path]:
    """``count`` new, empty files beside ``beside`` for pieces' encoded output: unlike a
    spill they are needed, so a file that cannot be made is the book's StorageError."""
    return [p for p in _new_temps(beside, "piece", count, needed=True) if p is not None]


def _new_temps(beside: Path, tag: str, count: int, *, needed: bool) -> list[Path | None]:
    paths: list[Path | None] = []
    try:
        for index in range(count):
            try:
                made = new_temp_beside(beside.with_name(f"{beside.name}.{tag}{index}"))
            except StorageError:
                if needed:
                    raise
                made = None
            paths.append(made)
    except BaseException:
        remove_spills(paths)
        raise
    return paths


def remove_spills(paths: Sequence[Path | None]) -> None:
    for path in paths:
        if path is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)


class SpillWriter:
    """Appends one group's decoded blocks; ``samples`` is None once the spill was dropped."""

    def __init__(self, path: Path | None) -> None:
        self.samples: int | None = None
        self._fd: int | None = None
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._unchecked = 0
        if path is None:
            return
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_TRUNC | _OPEN_FLAGS)
        except OSError:
            return
        self.samples = 0
        self._keep_reserve()

    def append(self, block: Block) -> None:
        if self._fd is None or self.samples is None:
            return
        data = np.ascontiguousarray(block.T, dtype=np.float32).tobytes()
        self._pending.append(data)
        self._pending_bytes += len(data)
        self.samples += block.shape[1]
        if self._pending_bytes >= _WRITE_BUFFER:
            self._flush()

    def close(self) -> int | None:
        """Write what is pending and close; the samples written, or None when dropped."""
        self._flush()
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
        return self.samples

    def _flush(self) -> None:
        if self._fd is None or not self._pending:
            return
        data = b"".join(self._pending)
        self._pending, self._pending_bytes = [], 0
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            self._drop()
            return
        self._unchecked += len(data)
        if self._unchecked >= _CHECK_EVERY:
            self._unchecked = 0
            self._keep_reserve()

    def _keep_reserve(self) -> None:
        if self._fd is None:
            return
        try:
            disk = os.fstatvfs(self._fd)
            free = disk.f_bavail * disk.f_frsize
        except OSError:
            free = 0
        if free < _RESERVE:
            self._drop()

    def _drop(self) -> None:
        # Give the space back at once: the second pass decodes these parts instead.
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)
        self._pending, self._pending_bytes = [], 0
        self.samples = None


@dataclass(frozen=True)
class SpillMap:
    """Where each part's decoded samples lie: (spill index, first sample), or None."""

    paths: tuple[Path | None, ...]
    where: tuple[tuple[int, int] | None, ...]
    channels: int

    @classmethod
    def of(
        cls,
        paths: Sequence[Path | None],
        groups: Sequence[range],
        written: Sequence[int | None],
        contents: Sequence[int],
        channels: int,
    ) -> SpillMap:
        """The map after the first pass: a group's spill counts only when it holds it all."""
        where: list[tuple[int, int] | None] = [None] * len(contents)
        for spill, (group, samples) in enumerate(zip(groups, written, strict=True)):
            if samples is None or samples != sum(contents[i] for i in group):
                continue
            offset = 0
            for index in group:
                where[index] = (spill, offset)
                offset += contents[index]
        return cls(tuple(paths), tuple(where), channels)


class SpillReader:
    """Reads parts back from a SpillMap; one per job (it keeps its files open)."""

    def __init__(self, spills: SpillMap | None) -> None:
        self._map = spills
        self._fds: dict[int, int] = {}

    def part_blocks(self, index: int, start: int, count: int) -> Iterator[Block] | None:
        """Samples ``start:start + count`` of part ``index``, or None: decode it instead."""
        found = None if self._map is None else self._map.where[index]
        if self._map is None or found is None:
            return None
        spill, offset = found
        fd = self._fds.get(spill)
        path = self._map.paths[spill]
        if fd is None:
            if path is None:
                return None
            try:
                fd = self._fds[spill] = os.open(path, os.O_RDONLY | _OPEN_FLAGS)
            except OSError:
                return None
        return _read(fd, self._map.channels, offset + start, count)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _read(fd: int, channels: int, start: int, count: int) -> Iterator[Block]:
    width = channels * _BYTES
    end = start + count
    while start < end:
        n = min(_READ_SAMPLES, end - start)
        raw = os.pread(fd, n * width, start * width)
        if len(raw) != n * width:
            raise AudioError("the decoded samples kept between passes came back short")
        interleaved = np.frombuffer(raw, dtype=np.float32).reshape(n, channels)
        yield np.ascontiguousarray(interleaved.T)
        start += n
