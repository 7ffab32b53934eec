"""One line's audio as planar float samples: its chunks decoded and joined, maybe stretched.

A dubbing line is short (a cue), so it is held whole; a track never holds more than the line
being placed and the tail of the lines it overlaps (see ``track``). Decoding and encoding go
through PyAV (FFmpeg), like the chapter's decoding path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import av.filter
import numpy as np
import numpy.typing as npt

from pipeline.audio.avutil import av_errors
from pipeline.audio.model import AudioError
from pipeline.audio.process import encode, open_part, planar_frame
from pipeline.audio.wav import WAVE_FORMAT_PCM, read_wav_info

Block = npt.NDArray[np.float32]  # (channels, samples)
_FORMAT = "fltp"
# FFmpeg's atempo takes 0.5 to 100 per instance; a dubbing ratio stays far below that.
ATEMPO_RANGE = (0.5, 100.0)


def channels_of(layout: str) -> int:
    return 1 if layout == "mono" else 2


def decode_line(
    paths: Sequence[Path], response_format: str, sample_rate: int, rate: int, layout: str
) -> Block:
    """The line's chunk files decoded at ``rate`` in ``layout`` and joined end to end."""
    blocks: list[Block] = []
    for path in paths:
        direct = _read_s16(path, response_format, sample_rate, rate, layout)
        if direct is not None:
            blocks.append(direct)
            continue
        resampler = av.AudioResampler(format=_FORMAT, layout=layout, rate=rate)
        with av_errors(f"decoding {path.name}"), open_part(path, response_format, sample_rate) as c:
            for frame in c.decode(audio=0):
                frame.pts = None  # a part's own timestamps must not make the resampler pad
                blocks.extend(_planar(out) for out in resampler.resample(frame))
        blocks.extend(_planar(out) for out in resampler.resample(None))
    if not blocks:
        return np.zeros((channels_of(layout), 0), dtype=np.float32)
    return np.concatenate(blocks, axis=1)


def _read_s16(path: Path, response_format: str, sample_rate: int, rate: int, layout: str
              ) -> Block | None:
    """16-bit mono pcm or wav already at ``rate``, read straight into floats (FFmpeg's own
    s16 to float scale, 1/32768), or None for anything that needs FFmpeg: opening a file
    with FFmpeg costs more than the few samples of a dubbing line."""
    if response_format not in ("pcm", "wav") or rate != sample_rate or layout != "mono":
        return None
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if response_format == "pcm":
            offset, length = 0, size - size % 2
        else:
            try:
                info = read_wav_info(f, size)
            except AudioError:
                return None  # FFmpeg will say what is wrong with it
            if (info.format_tag, info.channels, info.bits, info.sample_rate) != (
                WAVE_FORMAT_PCM, 1, 16, rate
            ):
                return None
            offset, length = info.data_offset, info.data_size - info.data_size % 2
        f.seek(offset)
        data = f.read(length)
    samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / np.float32(32768)
    return samples.reshape(1, -1)


def _planar(frame: av.AudioFrame) -> Block:
    return np.asarray(frame.to_ndarray(), dtype=np.float32)


def stretch(samples: Block, ratio: float, rate: int, layout: str) -> Block:
    """``samples`` played ``ratio`` times faster at the same pitch (FFmpeg's atempo)."""
    if not ATEMPO_RANGE[0] <= ratio <= ATEMPO_RANGE[1]:
        raise ValueError(f"atempo ratio {ratio} outside {ATEMPO_RANGE}")
    with av_errors("time-stretching a line"):
        graph = av.filter.Graph()
        source = graph.add_abuffer(
            format=_FORMAT, sample_rate=rate, layout=layout, time_base=Fraction(1, rate)
        )
        tempo = graph.add("atempo", f"{ratio:.6f}")
        sink = graph.add("abuffersink")
        source.link_to(tempo)
        tempo.link_to(sink)
        graph.configure()
        graph.push(planar_frame(samples, layout, rate, 0))
        graph.push(None)
        out: list[Block] = []
        while True:
            try:
                pulled = graph.pull()
            except (av.BlockingIOError, av.EOFError):
                break
            assert isinstance(pulled, av.AudioFrame)
            out.append(_planar(pulled))
    if not out:
        return np.zeros((samples.shape[0], 0), dtype=np.float32)
    return np.concatenate(out, axis=1)


def encode_blocks(
    blocks: Iterable[Block], path: Path, fmt: str, rate: int, layout: str,
    metadata: dict[str, str] | None = None,
) -> None:
    """Planar float blocks to ``path`` in output format ``fmt`` (one of ``ENCODINGS``)."""
    encode(blocks, path, fmt, rate, layout, metadata or {})


def blocks_of(samples: Block, size: int) -> Iterator[Block]:
    for start in range(0, samples.shape[1], size):
        yield samples[:, start : start + size]
