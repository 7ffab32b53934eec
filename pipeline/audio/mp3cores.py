"""An mp3 chapter finished on every core: measured in pieces, encoded in pieces, joined.

LAME is most of finishing's cost and runs on one core per encoder, so the chapter is cut
into one piece per core, each encoded by its own LAME, and the pieces' frames are joined.
For the joints to be seamless:

- every cut is a whole number of frames from the chapter's start, so each piece's frames
  cover the same samples as a single encoder's would (frame k starts at k * frame - delay);
- a piece after the first starts encoding ``_PRE_S`` earlier (whole frames) and the frames
  of that pre-roll are dropped: LAME's filter bank and psychoacoustic state, and the
  limiter's look-behind, are warm where the kept frames begin; a piece before the last goes
  on ``_POST_S`` longer for LAME's and the limiter's look-ahead;
- the bit reservoir is off (``reservoir=0``): every frame holds its own data, so frames of
  two encoders can follow each other (with it on, a frame may borrow bytes from the frame
  before it, which after a joint belongs to another encoder);
- one Info frame in front carries LAME's delay and the end padding for the whole chapter,
  so a decoder gives exactly the chapter's samples.

LAME runs at quality 7 (psychoacoustics for block switching only, no noise shaping): about
1.4x faster than 5 on speech; bench/mp3_quality.py measures what it costs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
import numpy.typing as npt

from pipeline.audio.avutil import av_errors
from pipeline.audio.control import Watch
from pipeline.audio.energy import StepEnergy, gated_loudness
from pipeline.audio.limiter import LevelProfile, TruePeakLimiter, compensated_gain_db
from pipeline.audio.model import AudioError, ChapterSpec
from pipeline.audio.mp3 import (
    fill_info_frame,
    id3v2_tag,
    info_frame_bitrate,
    make_frame,
    parse_header,
    toc_from_offsets,
)
from pipeline.audio.pieces import (
    Feedback,
    Span,
    cut_points,
    groups,
    pause_samples,
    run_on_cores,
    span_blocks,
    workers,
    zeros,
)
from pipeline.audio.process import Block, PartSink, decode_blocks, limited, loudness_gain_db
from pipeline.audio.timeline import Timeline

LAME_DELAY = 576  # LAME's encoder delay (ENCDELAY), the same at every rate
LAME_OPTIONS = {"compression_level": "7", "reservoir": "0"}
BIT_RATE_PER_CHANNEL = 64_000
_PRE_S = 0.2  # covers the limiter's 90 ms look-behind and leaves LAME 3+ frames to settle
_POST_S = 0.1
_LEAST_PIECE_S = 20.0  # shorter chapters are not worth a second encoder
_TOC_STRIDE = 64


@dataclass(frozen=True)
class Measured:
    """The first pass over one group of parts."""

    spans: list[Span]
    steps: npt.NDArray[np.float64]
    profile: LevelProfile


def measure_group(
    spec: ChapterSpec,
    indices: range,
    rate: int,
    layout: str,
    sink: PartSink | None,
    feedback: Feedback,
) -> Measured:
    """Decode a group of parts: their lengths, K-weighted energy, level profile, pauses."""
    energy = StepEnergy(rate, layout)
    profile = LevelProfile(rate)
    channels = 1 if layout == "mono" else 2
    spans = []
    done = 0
    for index in indices:
        part = spec.parts[index]
        content = 0
        for block in decode_blocks(part.path, spec.response_format, spec.sample_rate, rate, layout):
            if sink is not None:
                sink(index, block)
            energy.add(block)
            profile.add(block)
            content += block.shape[1]
            feedback.advance((done + content) / rate)
        pause = pause_samples(part, rate)
        for block in zeros(pause, channels, rate):
            energy.add(block)
            profile.add(block)
        done += content + pause
        spans.append(Span(content, pause))
    return Measured(spans, energy.steps(), profile)


def lame_encoder(rate: int, layout: str) -> av.AudioCodecContext:
    with av_errors("opening the mp3 encoder"):
        codec = av.CodecContext.create("libmp3lame", "w")
        assert isinstance(codec, av.AudioCodecContext)
        codec.sample_rate = rate
        codec.layout = layout
        codec.format = "fltp"
        codec.bit_rate = BIT_RATE_PER_CHANNEL * (1 if layout == "mono" else 2)
        codec.options = dict(LAME_OPTIONS)
        codec.open()
    return codec


def encode_frames(blocks: Iterator[Block], rate: int, layout: str) -> Iterator[bytes]:
    """LAME's frames for the blocks, one bytes each (FFmpeg's encoder gives one a packet)."""
    codec = lame_encoder(rate, layout)
    pts = 0
    with av_errors("encoding mp3"):
        for block in blocks:
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(block), format="fltp", layout=layout
            )
            frame.sample_rate = rate
            frame.pts = pts
            frame.time_base = Fraction(1, rate)
            pts += frame.samples
            yield from (bytes(p) for p in codec.encode(frame))
        yield from (bytes(p) for p in codec.encode(None))


def encode_piece(
    spec: ChapterSpec,
    spans: list[Span],
    rate: int,
    layout: str,
    gain: float | None,
    piece: tuple[int, int, int, int | None],
    feedback: Feedback,
) -> list[bytes]:
    """One piece's kept frames. ``piece``: (start, own start, end, frames kept or None: all).

    Samples ``start:end`` are encoded; the frames before ``own start`` are the pre-roll.
    """
    start, own, end, keep = piece
    frame = _frame_samples(rate)
    source = span_blocks(spec, spans, rate, layout, start, end)
    if gain is not None:
        source = limited(source, TruePeakLimiter(rate, 1 if layout == "mono" else 2, gain))
    position = start
    frames: list[bytes] = []

    def counted(blocks: Iterator[Block]) -> Iterator[Block]:
        nonlocal position
        for block in blocks:
            yield block
            position += block.shape[1]
            feedback.advance(max(0, min(position, end) - own) / rate)

    drop = (own - start) // frame
    for index, data in enumerate(encode_frames(counted(source), rate, layout)):
        if index >= drop and (keep is None or index - drop < keep):
            frames.append(data)
    if keep is not None and len(frames) != keep:
        raise AudioError(f"mp3 piece at sample {own}: {len(frames)} frames, not {keep}")
    return frames


def _frame_samples(rate: int) -> int:
    return 1152 if rate >= 32000 else 576


def _pieces(spans: list[Span], rate: int, count: int) -> list[tuple[int, int, int, int | None]]:
    frame = _frame_samples(rate)
    total = sum(s.content + s.pause for s in spans)
    pre = math.ceil(_PRE_S * rate / frame) * frame
    post = math.ceil(_POST_S * rate / frame) * frame
    least = max(round(_LEAST_PIECE_S * rate), 2 * pre)
    cuts = cut_points(spans, count, frame, least)
    starts, ends = [0, *cuts], [*cuts, total]
    pieces: list[tuple[int, int, int, int | None]] = []
    for index, (own, stop) in enumerate(zip(starts, ends, strict=True)):
        last = index == len(starts) - 1
        keep = None if last else (stop - own) // frame
        pieces.append((max(0, own - pre), own, total if last else stop + post, keep))
    return pieces


def finish_mp3(
    spec: ChapterSpec,
    path: Path,
    metadata: dict[str, str],
    layout: str,
    watch: Watch,
    part_sink: PartSink | None = None,
) -> Timeline:
    """Decode, measure, limit and encode ``spec`` to ``path`` (mp3) on every core.

    ``part_sink`` sees every part's decoded blocks once (in the first pass).
    """
    rate = spec.sample_rate
    count = workers()
    watch.start_pass(0.5)
    jobs = [
        partial(measure_group, spec, group, rate, layout, part_sink)
        for group in groups(spec, count)
    ]
    measured = run_on_cores(jobs, watch)
    spans = [span for m in measured for span in m.spans]
    gain = None
    if spec.loudness_lufs is not None:
        steps = np.concatenate([m.steps for m in measured])
        gain = loudness_gain_db(spec.loudness_lufs, gated_loudness(steps, round(rate * 0.1)))
        if gain is not None:
            gain = compensated_gain_db(gain, LevelProfile.joined([m.profile for m in measured]))
    watch.start_pass(0.5)
    pieces = _pieces(spans, rate, count)
    jobs2 = [partial(encode_piece, spec, spans, rate, layout, gain, p) for p in pieces]
    frames = [f for piece in run_on_cores(jobs2, watch) for f in piece]
    total = sum(s.content + s.pause for s in spans)
    with open(path, "wb") as out:
        write_mp3(out, frames, total, metadata)
    timeline = Timeline(rate)
    for part, span in zip(spec.parts, spans, strict=True):
        timeline.add_part(part, lead=0, content=span.content, tail=0)
        if part.end_of_line:
            timeline.pause_units(part.pause_after_ms, 1)
    return timeline


def write_mp3(out: BinaryIO, frames: list[bytes], samples: int, metadata: dict[str, str]) -> None:
    """An ID3v2 tag, one Info frame for the whole chapter, then ``frames`` (of ``samples``)."""
    if not frames:
        raise AudioError("the mp3 encoder gave no frames")
    template = parse_header(frames[0], 0)
    if template is None:
        raise AudioError("the mp3 encoder gave a frame without a header")
    bitrates = {data[2] >> 4 for data in frames}
    track = int(metadata["track"]) if metadata.get("track") else None
    out.write(id3v2_tag(metadata.get("title"), metadata.get("album"), track))
    info = make_frame(template, info_frame_bitrate(template, template.bitrate_index))
    size, sampled = len(info), []
    body = bytearray()
    for index, data in enumerate(frames):
        if index % _TOC_STRIDE == 0:
            sampled.append(size)
        body += data
        size += len(data)
    padding = len(frames) * template.samples - LAME_DELAY - samples
    out.write(
        fill_info_frame(
            info,
            template,
            cbr=len(bitrates) == 1,
            frames=len(frames),
            size=size,
            toc=toc_from_offsets(sampled, _TOC_STRIDE, len(frames), size),
            delay=LAME_DELAY,
            padding=padding,
        )
    )
    out.write(body)
