"""An mp3 chapter finished on every core: measured in pieces, encoded in pieces, joined.

LAME is most of finishing's cost and runs on one core per encoder, so the chapter is cut
into one piece per core, each encoded by its own LAME, and the pieces' frames are joined.
For the joints to be seamless:

- every cut is a whole number of frames from the chapter's start, so each piece's frames
  cover the same samples as a single encoder's would (frame k starts at k * frame - delay);
- a piece after the first starts encoding 0.2 s earlier (whole frames) and the frames of
  that pre-roll are dropped: LAME's filter bank and psychoacoustic state, and the
  limiter's look-behind, are warm where the kept frames begin; a piece before the last goes
  on 0.1 s longer for LAME's and the limiter's look-ahead;
- the bit reservoir is off (``reservoir=0``): every frame holds its own data, so frames of
  two encoders can follow each other (with it on, a frame may borrow bytes from the frame
  before it, which after a joint belongs to another encoder);
- one Info frame in front carries LAME's delay and the end padding for the whole chapter,
  so a decoder gives exactly the chapter's samples.

LAME runs at quality 7 (psychoacoustics for block switching only, no noise shaping): about
1.4x faster than 5 on speech; bench/mp3_quality.py measures what it costs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO

import av

from pipeline.audio.avutil import av_errors
from pipeline.audio.control import Watch
from pipeline.audio.energy import STEP_S, gated_loudness
from pipeline.audio.limiter import TruePeakLimiter, compensated_gain_db
from pipeline.audio.model import AudioError, ChapterSpec
from pipeline.audio.mp3 import (
    fill_info_frame,
    id3v2_tag,
    info_frame_bitrate,
    make_frame,
    parse_header,
    toc_from_offsets,
)
from pipeline.audio.partmeasure import PartMeasure, PartMeter, add_levels, joined, usable
from pipeline.audio.pauses import PartLevels
from pipeline.audio.pieces import (
    Feedback,
    Piece,
    Span,
    kept_frames,
    pause_samples,
    plan_pieces,
    sized_groups,
    span_blocks,
    workers,
)
from pipeline.audio.process import (
    Block,
    decode_blocks,
    limited,
    loudness_gain_db,
    open_encoder,
    planar_frame,
)
from pipeline.audio.procs import Runner, on_cores
from pipeline.audio.spill import SpillMap, SpillReader, SpillWriter, new_spills, remove_spills
from pipeline.audio.timeline import Timeline

LAME_DELAY = 576  # LAME's encoder delay (ENCDELAY), the same at every rate
LAME_OPTIONS = {"compression_level": "7", "reservoir": "0"}
BIT_RATE_PER_CHANNEL = 64_000
_LEAST_PIECE_S = 20.0  # shorter chapters are not worth a second encoder
_TOC_STRIDE = 64


@dataclass(frozen=True)
class Measured:
    """The first pass over one group of parts."""

    parts: list[PartMeasure]
    spilled: int | None  # samples kept in the group's spill; None: decode again


def measure_group(
    spec: ChapterSpec,
    indices: range,
    rate: int,
    layout: str,
    with_levels: bool,
    spill: Path | None,
    feedback: Feedback,
) -> Measured:
    """Decode and measure a group of parts, each on its own (``partmeasure``).

    ``spill`` (a file from ``spill.new_spills``) keeps the decoded samples for the second
    pass. Runs in a thread or in another process: it takes and gives only what pickles.
    """
    writer = SpillWriter(spill)
    parts = []
    done = 0
    try:
        for index in indices:
            part = spec.parts[index]
            meter = PartMeter(part.path, rate, layout, with_levels)
            for block in decode_blocks(
                part.path, spec.response_format, spec.sample_rate, rate, layout
            ):
                writer.append(block)
                meter.add(block)
                feedback.advance((done + meter.content) / rate)
            done += meter.content + pause_samples(part, rate)
            parts.append(meter.result())
    finally:
        spilled = writer.close()
    return Measured(parts, spilled)


def lame_encoder(rate: int, layout: str) -> av.AudioCodecContext:
    bit_rate = BIT_RATE_PER_CHANNEL * (1 if layout == "mono" else 2)
    return open_encoder("libmp3lame", rate, layout, bit_rate, dict(LAME_OPTIONS))


def encode_frames(blocks: Iterator[Block], rate: int, layout: str) -> Iterator[bytes]:
    """LAME's frames for the blocks, one bytes each (FFmpeg's encoder gives one a packet)."""
    codec = lame_encoder(rate, layout)
    pts = 0
    with av_errors("encoding mp3"):
        for block in blocks:
            yield from (bytes(p) for p in codec.encode(planar_frame(block, layout, rate, pts)))
            pts += block.shape[1]
        yield from (bytes(p) for p in codec.encode(None))


def encode_piece(
    spec: ChapterSpec,
    spans: list[Span],
    rate: int,
    layout: str,
    gain: float | None,
    piece: Piece,
    spills: SpillMap | None,
    feedback: Feedback,
) -> list[bytes]:
    """One piece's kept frames. ``piece``: (start, own start, end, frames kept or None: all).

    Samples ``start:end`` are encoded; the frames before ``own start`` are the pre-roll.
    Parts in ``spills`` are read back from there, the others decoded again.
    """
    start, own, end, _ = piece
    reader = SpillReader(spills)
    try:
        source = span_blocks(spec, spans, rate, layout, start, end, reader)
        if gain is not None:
            source = limited(source, TruePeakLimiter(rate, 1 if layout == "mono" else 2, gain))
        position = start
        def counted(blocks: Iterator[Block]) -> Iterator[Block]:
            nonlocal position
            for block in blocks:
                yield block
                position += block.shape[1]
                feedback.advance(max(0, min(position, end) - own) / rate)

        frames = encode_frames(counted(source), rate, layout)
        return kept_frames(frames, piece, _frame_samples(rate))
    finally:
        reader.close()


def _frame_samples(rate: int) -> int:
    return 1152 if rate >= 32000 else 576


def finish_mp3(
    spec: ChapterSpec,
    path: Path,
    metadata: dict[str, str],
    layout: str,
    watch: Watch,
    levels: PartLevels | None = None,
    measures: Sequence[PartMeasure | None] | None = None,
) -> Timeline:
    """Decode, measure, limit and encode ``spec`` to ``path`` (mp3) on every core.

    ``levels`` is given every part's window levels (for the subtitles' pauses). With a
    fitting measure for every part (``measures``, made as the answers came in), the first
    pass is skipped.
    """
    known = usable(spec, measures, spec.sample_rate, layout, levels is not None)
    sizes = [part.path.stat().st_size for part in spec.parts]
    parted = sized_groups(sizes, workers())
    spill_paths = new_spills(path, len(parted)) if known is None else []
    try:
        return on_cores(
            sum(sizes),
            partial(
                _finish_mp3, spec, path, metadata, layout, watch, levels, parted, spill_paths, known
            ),
            watch,
        )
    finally:
        remove_spills(spill_paths)


def _first_pass(
    spec: ChapterSpec,
    layout: str,
    watch: Watch,
    with_levels: bool,
    parted: list[range],
    spill_paths: list[Path | None],
    run: Runner,
) -> tuple[list[PartMeasure], SpillMap]:
    rate = spec.sample_rate
    jobs = [
        partial(measure_group, spec, group, rate, layout, with_levels, spill)
        for group, spill in zip(parted, spill_paths, strict=True)
    ]
    measured = run(jobs, watch)
    parts = [part for m in measured for part in m.parts]
    spills = SpillMap.of(
        spill_paths,
        parted,
        [m.spilled for m in measured],
        [part.content for part in parts],
        1 if layout == "mono" else 2,
    )
    return parts, spills


def _finish_mp3(
    spec: ChapterSpec,
    path: Path,
    metadata: dict[str, str],
    layout: str,
    watch: Watch,
    levels: PartLevels | None,
    parted: list[range],
    spill_paths: list[Path | None],
    known: list[PartMeasure] | None,
    run: Runner,
) -> Timeline:
    rate = spec.sample_rate
    spills = None
    if known is None:
        watch.start_pass(0.5)
        with_levels = levels is not None
        parts, spills = _first_pass(spec, layout, watch, with_levels, parted, spill_paths, run)
        watch.start_pass(0.5)
    else:
        parts = known
        watch.start_pass(1.0)
    chapter = joined(spec, parts, rate)
    if levels is not None:
        add_levels(levels, parts)
    gain = None
    if spec.loudness_lufs is not None:
        loudness = gated_loudness(chapter.steps, round(rate * STEP_S))
        gain = loudness_gain_db(spec.loudness_lufs, loudness)
        if gain is not None:
            gain = compensated_gain_db(gain, chapter.profile)
    spans = chapter.spans
    pieces = plan_pieces(spans, rate, _frame_samples(rate), workers(), _LEAST_PIECE_S)
    jobs = [partial(encode_piece, spec, spans, rate, layout, gain, p, spills) for p in pieces]
    frames = [f for piece in run(jobs, watch) for f in piece]
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
