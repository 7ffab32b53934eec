"""Lossless joins: the parts' own bytes, in order, with pauses in the same coding.

Each join streams to ``out`` (a seekable file opened by the caller) and returns the
Timeline of where every part is. Only one part is ever in memory; wav and pcm parts are
copied in blocks.
"""

from __future__ import annotations

import itertools
import os
import shutil
import struct
from collections.abc import Iterator
from typing import BinaryIO

from pipeline.audio.control import Watch
from pipeline.audio.model import OPUS_GRANULE_RATE, AudioError, ChapterSpec, Part
from pipeline.audio.mp3 import (
    DECODER_DELAY,
    Mp3Audio,
    fill_info_frame,
    id3v2_tag,
    info_frame_bitrate,
    make_frame,
    read_mp3,
    toc_from_offsets,
)
from pipeline.audio.ogg import OggWriter, OpusLink, opus_tags, packet_samples, read_opus
from pipeline.audio.silence import mp3_silent_frame, opus_silent_packet
from pipeline.audio.timeline import Timeline
from pipeline.audio.wav import WavInfo, read_wav_info, silence_byte, wav_header

_BLOCK = 1 << 20
_TOC_STRIDE = 64
VENDOR = "tts-pipeline"


def _write_repeated(out: BinaryIO, unit: bytes, count: int) -> None:
    per_block = max(1, _BLOCK // max(len(unit), 1))
    while count > 0:
        n = min(count, per_block)
        out.write(unit * n)
        count -= n


def _copy_range(src: BinaryIO, out: BinaryIO, offset: int, size: int) -> None:
    src.seek(offset)
    while size > 0:
        block = src.read(min(size, _BLOCK))
        if not block:
            raise AudioError(f"{src.name}: shorter than its header says")
        out.write(block)
        size -= len(block)


def _advance(watch: Watch | None, timeline: Timeline) -> None:
    if watch is not None:
        watch.advance(timeline.position / timeline.rate)


def _pause_after(part: Part) -> int | None:
    return part.pause_after_ms if part.end_of_line else None


# --- pcm --------------------------------------------------------------------------------


def join_pcm(spec: ChapterSpec, out: BinaryIO, watch: Watch | None = None) -> Timeline:
    """Raw s16le mono: bytes and zero samples."""
    timeline = Timeline(spec.sample_rate)
    for part in spec.parts:
        size = os.path.getsize(part.path)
        if size % 2:
            raise AudioError(f"{part.path.name}: {size} bytes is not whole 16-bit samples")
        with open(part.path, "rb") as src:
            shutil.copyfileobj(src, out, _BLOCK)
        timeline.add_part(part, lead=0, content=size // 2, tail=0)
        _advance(watch, timeline)
        if (pause := _pause_after(part)) is not None:
            _write_repeated(out, b"\0\0", timeline.pause_units(pause, 1))
    return timeline


# --- wav --------------------------------------------------------------------------------


def _wav_info(path: os.PathLike[str], first: WavInfo | None, rate: int) -> WavInfo:
    with open(path, "rb") as f:
        info = read_wav_info(f, os.fstat(f.fileno()).st_size)
    name = os.fspath(path)
    if first is not None and not info.same_format(first):
        raise AudioError(f"{name}: its WAVE format differs from the chapter's first part")
    if info.sample_rate != rate:
        raise AudioError(f"{name}: {info.sample_rate} Hz, the chapter asked for {rate} Hz")
    return info


def join_wav(spec: ChapterSpec, out: BinaryIO, watch: Watch | None = None) -> Timeline:
    """WAVE: one header (written last, when the data size is known), then every data chunk."""
    first = _wav_info(spec.parts[0].path, None, spec.sample_rate)
    header_at = out.tell()
    out.write(wav_header(first.fmt_chunk, 0))
    timeline = Timeline(first.sample_rate)
    data_size = 0
    zero = silence_byte(first.bits) * first.block_align
    for part in spec.parts:
        info = _wav_info(part.path, first, spec.sample_rate)
        with open(part.path, "rb") as src:
            _copy_range(src, out, info.data_offset, info.data_size)
        data_size += info.data_size
        timeline.add_part(part, lead=0, content=info.frames, tail=0)
        _advance(watch, timeline)
        if (pause := _pause_after(part)) is not None:
            count = timeline.pause_units(pause, 1)
            _write_repeated(out, zero, count)
            data_size += count * first.block_align
    if data_size & 1:
        out.write(b"\0")
    end = out.tell()
    out.seek(header_at)
    out.write(wav_header(first.fmt_chunk, data_size))
    out.seek(end)
    return timeline


# --- mp3 --------------------------------------------------------------------------------


def _mp3_parts(spec: ChapterSpec) -> Iterator[tuple[Part, Mp3Audio]]:
    first: Mp3Audio | None = None
    for part in spec.parts:
        try:
            audio = read_mp3(part.path.read_bytes())
        except AudioError as e:
            raise AudioError(f"{part.path.name}: {e}") from e
        if first is None:
            first = audio
        elif (audio.first.version, audio.sample_rate, audio.first.channels) != (
            first.first.version,
            first.sample_rate,
            first.first.channels,
        ):
            raise AudioError(f"{part.path.name}: its rate or channels differ from the first part")
        yield part, audio


class _Mp3Stream:
    """Counts what goes out after the info frame: frames, bytes, bitrates, seek points."""

    def __init__(self, out: BinaryIO, info_size: int) -> None:
        self.out = out
        self.frames = 0
        self.size = info_size
        self.bitrates: set[int] = set()
        self.sampled: list[int] = []

    def write_frame(self, frame: bytes | memoryview, bitrate_index: int) -> None:
        if self.frames % _TOC_STRIDE == 0:
            self.sampled.append(self.size)
        self.out.write(frame)
        self.frames += 1
        self.size += len(frame)
        self.bitrates.add(bitrate_index)


def join_mp3(spec: ChapterSpec, out: BinaryIO, watch: Watch | None = None) -> Timeline:
    """MPEG audio frames of every part, one ID3v2 tag and one Info/Xing frame in front."""
    parts = _mp3_parts(spec)
    first = next(parts)
    template, delay, bitrate = first[1].first, first[1].delay, first[1].bitrate_index
    out.write(id3v2_tag(spec.title, spec.album, spec.track))
    info_at = out.tell()
    info = make_frame(template, info_frame_bitrate(template, bitrate))
    out.write(info)
    silent = mp3_silent_frame(template, bitrate)
    stream = _Mp3Stream(out, len(info))
    timeline = Timeline(template.sample_rate)
    spf = template.samples
    end_padding = 0
    for index, (part, audio) in enumerate(itertools.chain([first], parts)):
        view = memoryview(audio.data)
        for offset, length in audio.frames:
            stream.write_frame(view[offset : offset + length], audio.data[offset + 2] >> 4)
        own = audio.samples - audio.delay - audio.padding if audio.has_lame_tag else audio.samples
        lead = 0 if index == 0 else audio.delay
        timeline.add_part(part, lead=lead, content=own, tail=audio.samples - own - audio.delay)
        _advance(watch, timeline)
        end_padding = audio.padding
        if (pause := _pause_after(part)) is not None:
            last = index == len(spec.parts) - 1
            count = timeline.pause_units(pause, spf, trimmed_after=DECODER_DELAY * last)
            for _ in range(count):
                stream.write_frame(silent, bitrate)
            end_padding = 0 if count else end_padding
    # A decoder honouring the tag drops DECODER_DELAY samples after the delay, and the end
    # padding beyond them: the chapter's last samples.
    timeline.trim_end(max(DECODER_DELAY, end_padding))
    end = out.tell()
    out.seek(info_at)
    out.write(
        fill_info_frame(
            info,
            template,
            cbr=len(stream.bitrates) == 1,
            frames=stream.frames,
            size=stream.size,
            toc=toc_from_offsets(stream.sampled, _TOC_STRIDE, stream.frames, stream.size),
            delay=delay,
            padding=end_padding,
        )
    )
    out.seek(end)
    return timeline


# --- ogg opus ---------------------------------------------------------------------------


def _opus_links(part: Part, channels: int | None) -> list[OpusLink]:
    try:
        links = read_opus(part.path.read_bytes())
    except AudioError as e:
        raise AudioError(f"{part.path.name}: {e}") from e
    for link in links:
        if channels is not None and link.channels != channels:
            raise AudioError(f"{part.path.name}: {link.channels} channels, not {channels}")
    return links


def _opus_comments(spec: ChapterSpec) -> list[str]:
    found = (("TITLE", spec.title), ("ALBUM", spec.album), ("TRACKNUMBER", spec.track))
    return [f"{key}={value}" for key, value in found if value is not None and value != ""]


def join_opus(spec: ChapterSpec, out: BinaryIO, watch: Watch | None = None) -> Timeline:
    """Every part's Opus packets in ONE logical Ogg stream (not a chain of links).

    The first part's OpusHead (its pre-skip) heads the stream. Later links keep their
    pre-skip samples and their end trim as sound: an Opus packet cannot be cut, and a
    decoder needs those packets to warm up. The Timeline counts them and the pauses absorb
    them. The last page's granule carries the end trim of whatever comes last.
    """
    first_links = _opus_links(spec.parts[0], None)
    head = first_links[0].head
    channels = first_links[0].channels
    # The serial only has to be unique within the file; a fixed one keeps output repeatable.
    writer = OggWriter(out, serial=struct.unpack("<I", b"tts0")[0])
    writer.header_packet(head)
    writer.header_packet(opus_tags(VENDOR, _opus_comments(spec)))
    silent = opus_silent_packet(channels)
    unit = packet_samples(silent)
    timeline = Timeline(OPUS_GRANULE_RATE)
    granule = 0
    end_trim = 0
    for index, part in enumerate(spec.parts):
        links = first_links if index == 0 else _opus_links(part, channels)
        start = timeline.position
        for link in links:
            for packet in link.packets:
                granule += packet_samples(packet)
                writer.audio_packet(packet, granule)
        lead = 0 if index == 0 else links[0].pre_skip
        # The stream's own pre-skip (the first part's) is dropped by every decoder.
        size = sum(link.samples for link in links) - (first_links[0].pre_skip if index == 0 else 0)
        tail = links[-1].end_trim
        own = sum(link.decoded_samples for link in links)
        timeline.add_part(part, lead=lead, content=size - lead - tail, tail=tail, own=own)
        _advance(watch, timeline)
        assert timeline.position == start + size
        end_trim = tail
        if (pause := _pause_after(part)) is not None:
            count = timeline.pause_units(pause, unit)
            for _ in range(count):
                granule += unit
                writer.audio_packet(silent, granule)
            end_trim = 0 if count else end_trim
    timeline.trim_end(end_trim)
    writer.finish(granule - end_trim)
    return timeline
