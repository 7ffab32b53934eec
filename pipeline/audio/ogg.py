"""Ogg pages and Opus packets: read a part's packets, write one logical stream.

Why a page writer of our own rather than a PyAV remux: a remux (tried: output container
"ogg", stream from the first part's template, packets copied with rewritten pts) decodes, but
FFmpeg's muxer derives every granule position from packet timestamps that its demuxer has
already shortened at each part's end trim, and offers no way to set the final granule
exactly. Here each granule is the running count of 48 kHz samples from the packets' own TOC
bytes (RFC 6716 section 3.1), and the last page carries the end trim of the last part.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from pipeline.audio.model import AudioError

# Ogg's CRC-32 (polynomial 0x04C11DB7, MSB first, init 0, no final xor) is zlib's reflected
# CRC-32 seen through a mirror: reverse the bits of every byte, run zlib without its
# pre- and post-inversion, reverse the 32-bit result. That keeps the byte loop in C.
_REVERSED_BYTES = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def ogg_crc(data: bytes) -> int:
    raw = zlib.crc32(data.translate(_REVERSED_BYTES), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{raw:032b}"[::-1], 2)


_HEADER = struct.Struct("<4sBBqIIIB")  # capture, version, type, granule, serial, seq, crc, n
FLAG_CONTINUED, FLAG_BOS, FLAG_EOS = 1, 2, 4
_MAX_PAGE_BODY = 8000  # close a page near 8 KB, like libogg's soft limit


@dataclass(frozen=True)
class Page:
    flags: int
    granule: int
    serial: int
    sequence: int
    lacing: bytes
    body: bytes


def read_pages(data: bytes) -> Iterator[Page]:
    """Every page of an Ogg file, CRC checked; AudioError on anything else."""
    offset = 0
    while offset < len(data):
        if len(data) - offset < _HEADER.size:
            raise AudioError(f"truncated Ogg page at byte {offset}")
        capture, version, flags, granule, serial, seq, crc, count = _HEADER.unpack_from(
            data, offset
        )
        if capture != b"OggS" or version != 0:
            raise AudioError(f"no Ogg page at byte {offset}")
        lacing_at = offset + _HEADER.size
        lacing = data[lacing_at : lacing_at + count]
        body_at = lacing_at + count
        end = body_at + sum(lacing)
        if len(lacing) < count or end > len(data):
            raise AudioError(f"truncated Ogg page at byte {offset}")
        header = bytearray(data[offset:body_at])
        header[22:26] = b"\0\0\0\0"
        if ogg_crc(bytes(header) + data[body_at:end]) != crc:
            raise AudioError(f"Ogg page at byte {offset} fails its CRC")
        yield Page(flags, granule, serial, seq, lacing, data[body_at:end])
        offset = end


@dataclass
class OpusLink:
    """One logical Opus stream (a chained file has several): its headers and packets."""

    head: bytes
    packets: list[bytes]
    last_granule: int

    @property
    def channels(self) -> int:
        return self.head[9]

    @property
    def pre_skip(self) -> int:
        return int(struct.unpack_from("<H", self.head, 10)[0])

    @property
    def input_rate(self) -> int:
        return int(struct.unpack_from("<I", self.head, 12)[0])

    @property
    def samples(self) -> int:
        return sum(packet_samples(p) for p in self.packets)

    @property
    def end_trim(self) -> int:
        return max(0, self.samples - self.last_granule)

    @property
    def decoded_samples(self) -> int:
        return max(0, min(self.samples, self.last_granule) - self.pre_skip)


def read_opus(data: bytes) -> list[OpusLink]:
    """The links of an Ogg Opus file, in order; AudioError when it is not one."""
    links: list[OpusLink] = []
    partial: dict[int, bytes] = {}
    streams: dict[int, list[bytes]] = {}
    granules: dict[int, int] = {}
    order: list[int] = []
    for page in read_pages(data):
        if page.flags & FLAG_BOS:
            if page.serial in streams:
                raise AudioError(f"Ogg serial {page.serial:#x} begins twice")
            streams[page.serial], granules[page.serial] = [], 0
            order.append(page.serial)
        elif page.serial not in streams:
            raise AudioError(f"Ogg page of serial {page.serial:#x} before its first page")
        packets = streams[page.serial]
        buffered = partial.pop(page.serial, b"") if page.flags & FLAG_CONTINUED else b""
        at = 0
        for size in page.lacing:
            buffered += page.body[at : at + size]
            at += size
            if size < 255:
                packets.append(buffered)
                buffered = b""
        if buffered:
            partial[page.serial] = buffered
        if page.granule != -1:
            granules[page.serial] = page.granule
    for serial in order:
        links.append(_opus_link(streams[serial], granules[serial]))
    if not links:
        raise AudioError("no Ogg pages")
    return links


def _opus_link(packets: list[bytes], last_granule: int) -> OpusLink:
    if len(packets) < 2 or packets[0][:8] != b"OpusHead" or len(packets[0]) < 19:
        raise AudioError("Ogg stream without an OpusHead")
    if packets[0][8] >> 4 != 0:
        raise AudioError(f"OpusHead version {packets[0][8]} is not supported")
    if packets[1][:8] != b"OpusTags":
        raise AudioError("Ogg Opus stream without OpusTags")
    audio = packets[2:]
    for i, packet in enumerate(audio):
        if not packet:
            raise AudioError(f"empty Opus packet {i}")
        packet_samples(packet)
    return OpusLink(packets[0], audio, last_granule)


_FRAME_SIZES_48K = (
    (480, 960, 1920, 2880) * 3  # SILK NB, MB, WB: 10, 20, 40, 60 ms
    + (480, 960) * 2  # hybrid SWB, FB: 10, 20 ms
    + (120, 240, 480, 960) * 4  # CELT NB, WB, SWB, FB: 2.5, 5, 10, 20 ms
)


def packet_samples(packet: bytes) -> int:
    """Samples at 48 kHz in one Opus packet, from its TOC byte (RFC 6716 section 3.1)."""
    toc = packet[0]
    per_frame = _FRAME_SIZES_48K[toc >> 3]
    code = toc & 3
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    else:
        if len(packet) < 2:
            raise AudioError("Opus code-3 packet without a frame count")
        frames = packet[1] & 0x3F
    total = frames * per_frame
    if frames == 0 or total > 5760:  # RFC 6716: at most 120 ms per packet
        raise AudioError(f"Opus packet of {frames} frame(s), {total} samples")
    return total


def opus_tags(vendor: str, comments: list[str]) -> bytes:
    def field(text: str) -> bytes:
        raw = text.encode("utf-8")
        return struct.pack("<I", len(raw)) + raw

    body = b"OpusTags" + field(vendor) + struct.pack("<I", len(comments))
    return body + b"".join(field(c) for c in comments)


class OggWriter:
    """Writes packets of ONE logical stream to pages, with one serial and running sequence."""

    def __init__(self, out: BinaryIO, serial: int) -> None:
        self._out = out
        self._serial = serial
        self._sequence = 0
        self._segments: list[int] = []
        self._body = bytearray()
        self._granule = -1  # granule of the last packet finished on the current page
        self._page_start_granule = 0  # granule of the last page written with one
        self._continued = False
        self._first = True

    def header_packet(self, packet: bytes) -> None:
        """A header packet: alone on its page(s), granule 0 (RFC 7845 section 3)."""
        self._add(packet, 0)
        self.flush()

    def audio_packet(self, packet: bytes, granule: int) -> None:
        # Close a full page before adding, so the last page always holds a packet.
        if len(self._body) >= _MAX_PAGE_BODY:
            self.flush()
        self._add(packet, granule)

    def finish(self, final_granule: int) -> None:
        """Write the last page, with the EOS flag and ``final_granule`` (the end trim).

        The end trim cannot reach back past the previous page's granule.
        """
        self._granule = max(final_granule, self._page_start_granule)
        self.flush(eos=True)

    def _add(self, packet: bytes, granule: int) -> None:
        lacing = [255] * (len(packet) // 255) + [len(packet) % 255]
        at = 0
        for value in lacing:
            if len(self._segments) == 255:
                self.flush(packet_open=True)
            self._segments.append(value)
            self._body += packet[at : at + value]
            at += value
        self._granule = granule

    def flush(self, *, eos: bool = False, packet_open: bool = False) -> None:
        if not self._segments and not eos:
            return
        flags = (FLAG_BOS if self._first else 0) | (FLAG_EOS if eos else 0)
        flags |= FLAG_CONTINUED if self._continued else 0
        granule = -1 if packet_open else self._granule
        header = _HEADER.pack(
            b"OggS", 0, flags, granule, self._serial, self._sequence, 0, len(self._segments)
        )
        page = bytearray(header + bytes(self._segments) + self._body)
        page[22:26] = struct.pack("<I", ogg_crc(bytes(page)))
        self._out.write(page)
        if granule != -1:
            self._page_start_granule = granule
        self._sequence += 1
        self._first = False
        self._continued = packet_open
        self._segments, self._body = [], bytearray()
