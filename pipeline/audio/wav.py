"""RIFF/WAVE: read the chunks of a part, write a chapter with one correct header.

A part may carry chunks besides ``fmt `` and ``data`` (LIST/INFO, fact, ...): they are walked
over by their sizes and dropped. A ``data`` size of 0 or 0xFFFFFFFF is what streaming
writers leave when they cannot seek back; it is read as "up to the end of the file".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

from pipeline.audio.model import AudioError

WAVE_FORMAT_PCM = 1
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)
# The RIFF size fields are 32-bit: a longer chapter needs another format.
MAX_DATA_BYTES = 0xFFFFFFFF - 36


@dataclass(frozen=True)
class WavInfo:
    format_tag: int
    channels: int
    sample_rate: int
    bits: int
    block_align: int
    fmt_chunk: bytes  # the fmt chunk's body, copied into the chapter's header as it is
    data_offset: int
    data_size: int

    @property
    def frames(self) -> int:
        return self.data_size // self.block_align

    def same_format(self, other: WavInfo) -> bool:
        return self.fmt_chunk == other.fmt_chunk


def _chunks(f: BinaryIO, file_size: int) -> list[tuple[bytes, int, int]]:
    """(id, body offset, declared size) of each chunk up to and including ``data``."""
    found: list[tuple[bytes, int, int]] = []
    offset = 12
    while offset + 8 <= file_size:
        f.seek(offset)
        cid, size = struct.unpack("<4sI", f.read(8))
        found.append((cid, offset + 8, size))
        if cid == b"data":
            break
        offset += 8 + size + (size & 1)
    return found


def read_wav_info(f: BinaryIO, file_size: int) -> WavInfo:
    """The format and the data span of a WAVE file; AudioError when it is not one we join."""
    f.seek(0)
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise AudioError("not a RIFF/WAVE file")
    chunks = {cid: (body, size) for cid, body, size in _chunks(f, file_size)}
    if b"fmt " not in chunks or b"data" not in chunks:
        raise AudioError("WAVE file without a fmt or data chunk")
    fmt_offset, fmt_size = chunks[b"fmt "]
    if fmt_size < 16:
        raise AudioError(f"WAVE fmt chunk of {fmt_size} bytes")
    f.seek(fmt_offset)
    fmt_chunk = f.read(fmt_size)
    tag, channels, rate, _, block_align, bits = struct.unpack("<HHIIHH", fmt_chunk[:16])
    if tag not in (WAVE_FORMAT_PCM, WAVE_FORMAT_EXTENSIBLE) or channels < 1 or rate < 1:
        raise AudioError(f"WAVE format {tag:#x}, {channels} channel(s) at {rate} Hz")
    if block_align != channels * ((bits + 7) // 8) or block_align == 0:
        raise AudioError(f"WAVE block align {block_align} for {channels} x {bits} bits")
    data_offset, declared = chunks[b"data"]
    available = max(0, file_size - data_offset)
    if declared in _UNKNOWN_SIZES:
        declared = available
    elif declared > available:
        raise AudioError(f"WAVE data chunk declares {declared} bytes, only {available} present")
    size = declared - declared % block_align
    return WavInfo(tag, channels, rate, bits, block_align, fmt_chunk, data_offset, size)


def wav_header(fmt_chunk: bytes, data_size: int) -> bytes:
    """A canonical header (RIFF, fmt, data) for ``data_size`` bytes of samples."""
    if data_size > MAX_DATA_BYTES:
        raise AudioError(f"{data_size} bytes of samples do not fit a WAVE file (4 GiB)")
    fmt = b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk + b"\0" * (len(fmt_chunk) & 1)
    riff_size = 4 + len(fmt) + 8 + data_size + (data_size & 1)
    return (
        b"RIFF"
        + struct.pack("<I", riff_size)
        + b"WAVE"
        + fmt
        + b"data"
        + struct.pack("<I", data_size)
    )


def silence_byte(bits: int) -> bytes:
    # 8-bit WAVE samples are unsigned: their zero level is 0x80.
    return b"\x80" if bits == 8 else b"\0"
