"""An .m4b book on every core: the chapters decoded once, AAC encoded in pieces, one mux.

The book is one AAC stream over every chapter, and FFmpeg's AAC encoder runs on one core
(about 70x real time here, so 40 s for a 45-minute chapter). As for an mp3 chapter
(``mp3cores``), the book is cut into a piece per core at whole AAC frames (1024 samples),
each piece encoded by its own encoder with a pre-roll whose frames are dropped, and the
kept packets are muxed in order into one file: the same packets, to within the encoders'
rounding, as one encoder's (``tests/audio/test_audio_book.py`` compares them).

The first pass decodes each chapter once, counts its samples (where the marks go and where
the pieces are cut) and keeps them in a spill; the second encodes from the spill.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av

from pipeline.audio.avutil import av_errors
from pipeline.audio.control import Watch
from pipeline.audio.model import AudioError
from pipeline.audio.pieces import (
    Feedback,
    Piece,
    Span,
    own_frames,
    plan_pieces,
    sample_range,
    sized_groups,
    workers,
)
from pipeline.audio.process import ENCODINGS, Block, decode_blocks, open_encoder, planar_frame
from pipeline.audio.procs import Runner, on_cores
from pipeline.audio.spill import (
    SpillMap,
    SpillReader,
    SpillWriter,
    new_piece_files,
    new_spills,
    remove_spills,
)

if TYPE_CHECKING:
    from av.container.core import Chapter  # a TypedDict of PyAV's stubs only

FRAME = 1024  # samples in an AAC frame
_HEADER = struct.Struct("<qiI")  # a packet in a piece's file: pts, duration, size; then data
_PACKET_BUFFER = 1 << 20
_LEAST_PIECE_S = 20.0  # shorter books are not worth a second encoder


@dataclass(frozen=True)
class BookAudio:
    """The chapter files and how to decode them: what every piece's job gets."""

    paths: tuple[Path, ...]
    formats: tuple[str, ...]  # av's format per file: "auto", or "pcm" for headerless pcm
    pcm_sample_rate: int
    rate: int
    layout: str

    @property
    def channels(self) -> int:
        return 1 if self.layout == "mono" else 2

    def decoded(self, index: int) -> Iterator[Block]:
        fmt = self.formats[index]
        return decode_blocks(self.paths[index], fmt, self.pcm_sample_rate, self.rate, self.layout)


@dataclass(frozen=True)
class Counted:
    lengths: list[int]
    spilled: int | None


def count_group(
    book: BookAudio, indices: range, spill: Path | None, feedback: Feedback
) -> Counted:
    """Decode a group of chapters: their lengths in samples, kept in ``spill``."""
    writer = SpillWriter(spill)
    lengths = []
    done = 0
    try:
        for index in indices:
            samples = 0
            for block in book.decoded(index):
                writer.append(block)
                samples += block.shape[1]
                feedback.advance((done + samples) / book.rate)
            lengths.append(samples)
            done += samples
    finally:
        spilled = writer.close()
    return Counted(lengths, spilled)


def aac_encoder(rate: int, layout: str) -> av.AudioCodecContext:
    encoding = ENCODINGS["m4a"]
    bit_rate = (encoding.bit_rate_per_channel or 0) * (1 if layout == "mono" else 2)
    return open_encoder(encoding.codec, rate, layout, bit_rate, dict(encoding.options))


Packet = tuple[bytes, int, int]  # data, pts and duration in the book's samples


def encode_aac_piece(
    book: BookAudio,
    lengths: list[int],
    piece: Piece,
    spills: SpillMap | None,
    out: Path,
    feedback: Feedback,
) -> int:
    """Write the piece's own packets to ``out`` (see :func:`read_packets`); how many.

    A file, not a list handed back: a ten-hour book is half a gigabyte of AAC, and the
    muxer takes the pieces one after the other."""
    start, own, end, _ = piece
    reader = SpillReader(spills)
    codec = aac_encoder(book.rate, book.layout)

    def packets() -> Iterator[Packet]:
        pts = start
        with av_errors("encoding AAC"):
            for block in _range_blocks(book, lengths, start, end, reader):
                frame = planar_frame(block, book.layout, book.rate, pts)
                pts += block.shape[1]
                yield from _timed(codec.encode(frame))
                feedback.advance(max(0, min(pts, end) - own) / book.rate)
            yield from _timed(codec.encode(None))

    try:
        fd = os.open(out, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "wb", buffering=_PACKET_BUFFER) as file:
            count = 0
            for data, pts, duration in own_frames(packets(), piece, FRAME):
                file.write(_HEADER.pack(pts, duration, len(data)))
                file.write(data)
                count += 1
        return count
    finally:
        reader.close()


def read_packets(path: Path, count: int) -> Iterator[Packet]:
    """The ``count`` packets :func:`encode_aac_piece` wrote to ``path``."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb", buffering=_PACKET_BUFFER) as file:
        for _ in range(count):
            head = file.read(_HEADER.size)
            if len(head) != _HEADER.size:
                raise AudioError("a piece of the book came back short")
            pts, duration, size = _HEADER.unpack(head)
            data = file.read(size)
            if len(data) != size:
                raise AudioError("a piece of the book came back short")
            yield data, pts, duration


def _timed(packets: list[av.Packet[Any]]) -> Iterator[Packet]:
    for packet in packets:
        if packet.pts is None:
            raise AudioError("the AAC encoder gave a packet without a time")
        yield bytes(packet), packet.pts, packet.duration or FRAME


def _range_blocks(
    book: BookAudio, lengths: list[int], start: int, end: int, reader: SpillReader
) -> Iterator[Block]:
    """Samples ``start:end`` of the book: from the spill, else decoded again."""
    offset = 0
    for index, length in enumerate(lengths):
        lo, hi = max(start, offset), min(end, offset + length)
        if hi > lo:
            kept = reader.part_blocks(index, lo - offset, hi - lo)
            if kept is None:
                kept = _decoded_range(book, index, lo - offset, hi - offset)
            yield from kept
        offset += length
        if offset >= end:
            return


def _decoded_range(book: BookAudio, index: int, lo: int, hi: int) -> Iterator[Block]:
    reached = yield from sample_range(book.decoded(index), lo, hi)
    if reached < hi:
        raise AudioError(f"{book.paths[index].name}: decoded to another length the second time")


def encode_book(
    book: BookAudio,
    path: Path,
    metadata: dict[str, str],
    titles: Sequence[str],
    watch: Watch,
) -> list[Chapter]:
    """Write the AAC book to ``path`` (an MP4 container); its chapter marks, in samples."""
    sizes = [p.stat().st_size for p in book.paths]
    parted = sized_groups(sizes, workers())
    size = sum(sizes)
    spill_paths = new_spills(path, len(parted))
    try:
        attempt = partial(_encode_book, book, path, metadata, titles, watch, parted, spill_paths)
        return on_cores(size, attempt, watch)
    finally:
        remove_spills(spill_paths)


def _encode_book(
    book: BookAudio,
    path: Path,
    metadata: dict[str, str],
    titles: Sequence[str],
    watch: Watch,
    parted: list[range],
    spill_paths: list[Path | None],
    run: Runner,
) -> list[Chapter]:
    watch.start_pass(0.5)
    groups = zip(parted, spill_paths, strict=True)
    counted = run([partial(count_group, book, group, spill) for group, spill in groups], watch)
    lengths = [n for c in counted for n in c.lengths]
    spills = SpillMap.of(spill_paths, parted, [c.spilled for c in counted], lengths, book.channels)
    watch.start_pass(0.5)
    spans = [Span(n, 0) for n in lengths]
    pieces = plan_pieces(spans, book.rate, FRAME, workers(), _LEAST_PIECE_S)
    outs = new_piece_files(path, len(pieces))
    try:
        jobs = [
            partial(encode_aac_piece, book, lengths, piece, spills, out)
            for piece, out in zip(pieces, outs, strict=True)
        ]
        counts = run(jobs, watch)
        marks = _marks(lengths, titles, book.rate)
        packets = (p for out, n in zip(outs, counts, strict=True) for p in read_packets(out, n))
        _mux(path, packets, book, metadata, marks)
    finally:
        remove_spills(outs)
    return marks


def _marks(lengths: list[int], titles: Sequence[str], rate: int) -> list[Chapter]:
    marks: list[Chapter] = []
    start = 0
    for index, (length, title) in enumerate(zip(lengths, titles, strict=True)):
        marks.append(
            {
                "id": index + 1,
                "start": start,
                "end": start + length,
                "time_base": Fraction(1, rate),
                "metadata": {"title": title},
            }
        )
        start += length
    return marks


def _mux(
    path: Path,
    packets: Iterator[Packet],
    book: BookAudio,
    metadata: dict[str, str],
    marks: list[Chapter],
) -> None:
    encoding = ENCODINGS["m4a"]
    time_base = Fraction(1, book.rate)
    with av_errors("writing the book"), av.open(str(path), "w", format=encoding.container) as out:
        # The stream's own encoder is never fed: it is opened with the pieces' settings so
        # that the file's header (the AudioSpecificConfig, the priming) is theirs.
        stream = out.add_stream(
            encoding.codec, rate=book.rate, layout=book.layout, options=dict(encoding.options)
        )
        assert isinstance(stream, av.AudioStream)
        stream.bit_rate = (encoding.bit_rate_per_channel or 0) * book.channels
        out.metadata.update(metadata)
        muxed = 0
        for data, pts, duration in packets:
            muxed += 1
            packet = av.Packet(data)
            packet.pts = packet.dts = pts
            packet.duration = duration
            packet.time_base = time_base
            packet.stream = stream
            out.mux(packet)
        out.set_chapters(marks)
    if not muxed:
        raise AudioError("the AAC encoder gave no packets")

