"""MPEG audio Layer III: frame headers, tags, the Xing/Info/LAME frame, ID3v2.

Only what a frame-level join needs: find every audio frame of a part (dropping ID3v2, ID3v1
and APEv2 tags and the part's own Xing/Info/VBRI frame), read the LAME encoder delay and
padding, and build the chapter's one Info frame and one ID3v2 tag.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass

from pipeline.audio.model import AudioError

MPEG1, MPEG2, MPEG25 = 3, 2, 0  # the header's version bits
_LAYER3 = 1
_BITRATES_KBPS = {
    MPEG1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    MPEG2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_BITRATES_KBPS[MPEG25] = _BITRATES_KBPS[MPEG2]
_RATES = {MPEG1: (44100, 48000, 32000), MPEG2: (22050, 24000, 16000), MPEG25: (11025, 12000, 8000)}
# The decoder's own delay (MDCT overlap + polyphase filter bank): LAME counts it apart.
DECODER_DELAY = 529
_XING_FIELDS = 0x0F  # frames, bytes, TOC, quality
_XING_SIZE = 4 + 4 + 4 + 4 + 100 + 4
_LAME_SIZE = 36


@dataclass(frozen=True)
class FrameHeader:
    version: int
    bitrate_index: int
    rate_index: int
    padding: int
    mode: int  # 3 = mono
    protected: bool
    raw: bytes

    @property
    def sample_rate(self) -> int:
        return _RATES[self.version][self.rate_index]

    @property
    def channels(self) -> int:
        return 1 if self.mode == 3 else 2

    @property
    def samples(self) -> int:
        return 1152 if self.version == MPEG1 else 576

    @property
    def length(self) -> int:
        return frame_length(self.version, self.bitrate_index, self.rate_index, self.padding)

    @property
    def side_info_length(self) -> int:
        if self.version == MPEG1:
            return 17 if self.mode == 3 else 32
        return 9 if self.mode == 3 else 17


def frame_length(version: int, bitrate_index: int, rate_index: int, padding: int) -> int:
    bitrate = _BITRATES_KBPS[version][bitrate_index] * 1000
    per_slot = 144 if version == MPEG1 else 72
    return per_slot * bitrate // _RATES[version][rate_index] + padding


def parse_header(data: bytes | memoryview, offset: int) -> FrameHeader | None:
    """The Layer III frame header at ``offset``, or None when there is none."""
    if offset + 4 > len(data):
        return None
    b0, b1, b2, b3 = data[offset : offset + 4]
    version, layer = (b1 >> 3) & 3, (b1 >> 1) & 3
    bitrate_index, rate_index = b2 >> 4, (b2 >> 2) & 3
    if b0 != 0xFF or (b1 & 0xE0) != 0xE0 or version == 1 or layer != _LAYER3:
        return None
    if bitrate_index in (0, 15) or rate_index == 3:
        return None  # free format and reserved values: nothing a TTS encoder writes
    return FrameHeader(
        version,
        bitrate_index,
        rate_index,
        (b2 >> 1) & 1,
        b3 >> 6,
        not (b1 & 1),
        bytes(data[offset : offset + 4]),
    )


@dataclass(frozen=True)
class Mp3Audio:
    """The audio frames of one mp3 file, its tags and info frame left out."""

    data: bytes
    frames: tuple[tuple[int, int], ...]  # (offset, length) into data
    first: FrameHeader
    delay: int  # LAME encoder delay, 0 when the file does not say
    padding: int  # LAME end padding, 0 when the file does not say
    has_lame_tag: bool
    bitrate_index: int  # the most common one

    @property
    def sample_rate(self) -> int:
        return self.first.sample_rate

    @property
    def samples(self) -> int:
        return len(self.frames) * self.first.samples

    @property
    def decoded_samples(self) -> int:
        """What a decoder that honours the LAME tag (FFmpeg) gives for this file alone."""
        if not self.has_lame_tag:
            return self.samples
        return self.samples - self.delay - DECODER_DELAY - max(0, self.padding - DECODER_DELAY)


def _id3v2_end(data: bytes) -> int:
    """Offset after any ID3v2 tags at the start (several may be stacked)."""
    offset = 0
    while data[offset : offset + 3] == b"ID3" and len(data) >= offset + 10:
        size = _syncsafe(data[offset + 6 : offset + 10])
        footer = 10 if data[offset + 5] & 0x10 else 0
        offset += 10 + size + footer
    return offset


def _trailing_tags_start(data: bytes, end: int) -> int:
    """Where ID3v1 and APEv2 tags at the end of the file begin."""
    changed = True
    while changed:
        changed = False
        if end >= 128 and data[end - 128 : end - 125] == b"TAG":
            end -= 128
            changed = True
        if end >= 32 and data[end - 32 : end - 24] == b"APETAGEX":
            size, flags = struct.unpack("<II", data[end - 20 : end - 12])
            end -= size + (32 if flags & 0x80000000 else 0)
            changed = True
    return end


def _syncsafe(b: bytes) -> int:
    return (b[0] & 0x7F) << 21 | (b[1] & 0x7F) << 14 | (b[2] & 0x7F) << 7 | (b[3] & 0x7F)


def _scan_frames(data: bytes, start: int, end: int) -> list[tuple[int, int, FrameHeader]]:
    frames: list[tuple[int, int, FrameHeader]] = []
    offset = start
    first: FrameHeader | None = None
    while offset < end:
        header = parse_header(data, offset)
        if header is None:
            if not frames and data[offset] == 0:
                offset += 1  # zero padding some taggers leave after the ID3v2 tag
                continue
            raise AudioError(f"no MPEG Layer III frame at byte {offset}")
        if first is not None and (
            header.version != first.version
            or header.rate_index != first.rate_index
            or header.channels != first.channels
        ):
            raise AudioError(f"frame at byte {offset} changes the rate or channels")
        length = header.length
        if offset + length > end:
            raise AudioError(f"truncated frame at byte {offset}")
        frames.append((offset, length, header))
        first = first or header
        offset += length
    return frames


def _info_offset(data: bytes, offset: int, header: FrameHeader) -> int | None:
    """Offset of the Xing/Info tag in this frame, or None when it is an audio frame."""
    at = offset + 4 + (2 if header.protected else 0) + header.side_info_length
    if data[at : at + 4] in (b"Xing", b"Info"):
        return at
    return None


def _is_vbri(data: bytes, offset: int) -> bool:
    return data[offset + 36 : offset + 40] == b"VBRI"


def _lame_delay_padding(data: bytes, xing_at: int) -> tuple[int, int] | None:
    flags = struct.unpack(">I", data[xing_at + 4 : xing_at + 8])[0]
    at = xing_at + 8 + 4 * bool(flags & 1) + 4 * bool(flags & 2) + 100 * bool(flags & 4)
    at += 4 * bool(flags & 8)
    if data[at : at + 4] not in (b"LAME", b"Lavf", b"Lavc", b"L3.9"):
        return None
    packed = int.from_bytes(data[at + 21 : at + 24], "big")
    return packed >> 12, packed & 0xFFF


def read_mp3(data: bytes) -> Mp3Audio:
    """Every audio frame of an mp3 file; AudioError when it is not one or is damaged."""
    start, end = _id3v2_end(data), len(data)
    end = _trailing_tags_start(data, end)
    scanned = _scan_frames(data, start, end)
    if not scanned:
        raise AudioError("no MPEG audio frames")
    delay = padding = 0
    has_lame = False
    off, _, head = scanned[0]
    xing_at = _info_offset(data, off, head)
    if xing_at is not None or _is_vbri(data, off):
        if xing_at is not None and (found := _lame_delay_padding(data, xing_at)) is not None:
            (delay, padding), has_lame = found, True
        scanned = scanned[1:]
    if not scanned:
        raise AudioError("an mp3 info frame and no audio frames")
    common = Counter(h.bitrate_index for _, _, h in scanned).most_common(1)[0][0]
    return Mp3Audio(
        data,
        tuple((o, n) for o, n, _ in scanned),
        scanned[0][2],
        delay,
        padding,
        has_lame,
        common,
    )


def make_frame(template: FrameHeader, bitrate_index: int) -> bytes:
    """A silent frame with the template's version, rate and mode: all-zero side info.

    Zero side information means no main data and no bit-reservoir reference
    (main_data_begin = 0), so the frame decodes to silence after any other frame.
    """
    b1 = 0xE0 | template.version << 3 | _LAYER3 << 1 | 1  # no CRC
    b2 = bitrate_index << 4 | template.rate_index << 2
    b3 = template.raw[3] & 0xCF  # mode, copyright, original, emphasis; mode extension 0
    length = frame_length(template.version, bitrate_index, template.rate_index, 0)
    return bytes((0xFF, b1, b2, b3)) + bytes(length - 4)


def info_frame_bitrate(template: FrameHeader, preferred: int) -> int:
    """The first bitrate index, from ``preferred`` on, whose frame holds Xing and LAME."""
    need = 4 + template.side_info_length + _XING_SIZE + _LAME_SIZE
    for index in range(preferred, 15):
        if frame_length(template.version, index, template.rate_index, 0) >= need:
            return index
    raise AudioError("no bitrate gives an info frame large enough")  # pragma: no cover


def _crc16(data: bytes) -> int:
    # CRC-16/ARC (polynomial 0x8005 reflected, init 0): what LAME's tag CRC uses.
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def fill_info_frame(
    frame: bytes,
    template: FrameHeader,
    *,
    cbr: bool,
    frames: int,
    size: int,
    toc: bytes,
    delay: int,
    padding: int,
) -> bytes:
    """``frame`` (from make_frame) with a Xing/Info tag and a LAME tag filled in."""
    out = bytearray(frame)
    at = 4 + template.side_info_length
    xing = (b"Info" if cbr else b"Xing") + struct.pack(">III", _XING_FIELDS, frames, size)
    xing += toc + struct.pack(">I", 0)
    lame = bytearray(_LAME_SIZE)
    lame[0:9] = b"LAME3.100"
    lame[9] = 0x00 if not cbr else 0x01
    lame[21:24] = (min(delay, 0xFFF) << 12 | min(padding, 0xFFF)).to_bytes(3, "big")
    lame[28:32] = struct.pack(">I", size)
    out[at : at + _XING_SIZE] = xing
    out[at + _XING_SIZE : at + _XING_SIZE + _LAME_SIZE] = lame
    crc_at = at + _XING_SIZE + _LAME_SIZE - 2
    out[crc_at : crc_at + 2] = struct.pack(">H", _crc16(bytes(out[:190])))
    return bytes(out)


def toc_from_offsets(sampled: list[int], stride: int, frames: int, size: int) -> bytes:
    """The Xing seek table: 100 entries, each the byte position at i% of the frames / 256.

    ``sampled`` holds the byte offset of every ``stride``-th frame (from the info frame on).
    """
    out = bytearray(100)
    for i in range(100):
        frame = i * frames // 100
        position = sampled[min(frame // stride, len(sampled) - 1)] if sampled else 0
        out[i] = min(255, position * 256 // max(size, 1))
    return bytes(out)


def id3v2_tag(title: str | None, album: str | None, track: int | None) -> bytes:
    """One ID3v2.4 tag with TIT2, TALB and TRCK (UTF-8), or b"" when there is nothing."""
    body = b""
    for frame_id, value in (("TIT2", title), ("TALB", album), ("TRCK", track)):
        if value is None or value == "":
            continue
        text = b"\x03" + str(value).encode("utf-8")
        body += frame_id.encode() + _to_syncsafe(len(text)) + b"\0\0" + text
    if not body:
        return b""
    return b"ID3\x04\x00\x00" + _to_syncsafe(len(body)) + body


def _to_syncsafe(n: int) -> bytes:
    if n >= 1 << 28:
        raise AudioError("ID3v2 frame too large")
    return bytes(((n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F))
