"""The decoding path: parts to PCM, pauses, resampling, EBU R128 loudness, one encode.

Taken when the chapter's format differs from the API's or a loudness target is set. Every
pass streams from the part files in blocks of planar float (about a second each), so memory
stays flat whatever the chapter's length.

With a loudness target the chapter is read twice: once through FFmpeg's ``ebur128`` meter
at the audio's own rate, then through a gain to the target and a true-peak limiter
(-1.5 dBTP) into the encoder. The gain is linear, so the result's integrated loudness is the
target, less whatever the limiter takes off the loudest peaks; that share is predicted from
a level profile taken in the first pass and added to the gain (limiter.compensated_gain_db).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np
import numpy.typing as npt

from pipeline.audio.avutil import av_errors
from pipeline.audio.control import Watch
from pipeline.audio.limiter import LevelProfile, TruePeakLimiter, compensated_gain_db
from pipeline.audio.loudness import LoudnessMeter
from pipeline.audio.model import AudioError, ChapterSpec
from pipeline.audio.timeline import Timeline
from pipeline.speech import opus_rate

if TYPE_CHECKING:
    from pipeline.audio.partmeasure import PartMeasure  # they import this module
    from pipeline.audio.pauses import PartLevels

Block = npt.NDArray[np.float32]  # (channels, samples), planar float
_WORK_FORMAT = "fltp"
_BLOCK_S = 1  # samples gathered per block: small enough for 0.5 s cancellation, big for speed


@dataclass(frozen=True)
class Encoding:
    container: str
    codec: str
    bit_rate_per_channel: int | None  # None: lossless
    options: tuple[tuple[str, str], ...] = ()


ENCODINGS = {
    # LAME quality 5 of 0 (best) to 9: FFmpeg otherwise leaves LAME at 3, which encoded
    # espeak speech here at 68x real time against 81x; LAME is most of finishing's cost.
    "mp3": Encoding("mp3", "libmp3lame", 64_000, (("compression_level", "5"),)),
    "opus": Encoding("opus", "libopus", 48_000),
    "flac": Encoding("flac", "flac", None),
    # FFmpeg's "fast" AAC coder rather than its default "twoloop": on espeak speech at this
    # rate 1.5x faster, and closer to the source (45.3 against 41.7 dB SNR).
    "m4a": Encoding("ipod", "aac", 96_000, (("aac_coder", "fast"),)),
    "wav": Encoding("wav", "pcm_s16le", None),
    "pcm": Encoding("s16le", "pcm_s16le", None),
}


def output_rate(output_format: str, sample_rate: int) -> int:
    return opus_rate(sample_rate) if output_format == "opus" else sample_rate


def open_part(path: Path, response_format: str, sample_rate: int) -> av.container.InputContainer:
    if response_format == "pcm":
        # The API's pcm is headerless s16le mono at the requested rate.
        options = {"sample_rate": str(sample_rate), "ch_layout": "mono"}
        return av.open(str(path), "r", format="s16le", options=options)
    return av.open(str(path), "r")


def decode_blocks(
    path: Path, response_format: str, sample_rate: int, rate: int, layout: str
) -> Iterator[Block]:
    """A file's audio as planar float blocks at ``rate`` in ``layout``, about a second each."""
    block = rate * _BLOCK_S
    with av_errors(f"decoding {path.name}"), open_part(path, response_format, sample_rate) as c:
        frames = c.decode(audio=0)
        first = next(frames, None)
        if first is None:
            return
        if (first.format.name, first.sample_rate, first.layout.name) == (
            _WORK_FORMAT,
            rate,
            layout,
        ):
            # mp3 and Opus decode to planar float already: a FIFO hands out whole blocks,
            # one array a second rather than one per (24 ms) frame, twice as fast.
            fifo = av.AudioFifo()
            for frame in itertools.chain([first], frames):
                frame.pts = None
                fifo.write(frame)
                # Only full blocks are asked for: a read that gives nothing costs a call too.
                while fifo.samples >= block and (out := fifo.read(block)) is not None:
                    yield _planar(out)
            if (rest := fifo.read(fifo.samples)) is not None:
                yield _planar(rest)
            return
        yield from _resampled(itertools.chain([first], frames), rate, layout)


def _resampled(frames: Iterator[av.AudioFrame], rate: int, layout: str) -> Iterator[Block]:
    resampler = av.AudioResampler(format=_WORK_FORMAT, layout=layout, rate=rate)
    pending: list[Block] = []
    size = 0
    for frame in frames:
        # Timestamps are renumbered downstream; a part's own (Opus pre-skip makes them
        # negative) must not make the resampler pad or drop samples.
        frame.pts = None
        for out in resampler.resample(frame):
            pending.append(_planar(out))
            size += out.samples
        if size >= rate * _BLOCK_S:
            yield _joined(pending)
            pending, size = [], 0
    pending.extend(_planar(out) for out in resampler.resample(None))
    if pending:
        yield _joined(pending)


def _planar(frame: av.AudioFrame) -> Block:
    return np.asarray(frame.to_ndarray(), dtype=np.float32)


def _joined(blocks: list[Block]) -> Block:
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)


def probe_layout(path: Path, response_format: str, sample_rate: int) -> str:
    with av_errors(f"reading {path.name}"), open_part(path, response_format, sample_rate) as c:
        if not c.streams.audio:
            raise AudioError(f"{path.name}: no audio stream")
        channels = c.streams.audio[0].codec_context.channels
    return "mono" if channels == 1 else "stereo"


def _silence(samples: int, rate: int, channels: int) -> Iterator[Block]:
    block = rate * _BLOCK_S
    while samples > 0:
        n = min(block, samples)
        yield np.zeros((channels, n), dtype=np.float32)
        samples -= n


PartSink = Callable[[int, Block], None]


def chapter_blocks(
    spec: ChapterSpec,
    rate: int,
    layout: str,
    timeline: Timeline | None,
    watch: Watch,
    part_sink: PartSink | None = None,
) -> Iterator[Block]:
    """The chapter as blocks: every part decoded, then its pause; counted in ``timeline``.

    ``watch`` sees every block go by: progress in seconds of this pass, cancellation.
    ``part_sink`` gets each part's blocks with the part's index (subtitle timing).
    """
    counter = timeline or Timeline(rate)
    channels = 1 if layout == "mono" else 2
    done = 0
    for index, part in enumerate(spec.parts):
        samples = 0
        for block in decode_blocks(part.path, spec.response_format, spec.sample_rate, rate, layout):
            if part_sink is not None:
                part_sink(index, block)
            samples += block.shape[1]
            done += block.shape[1]
            yield block
            watch.advance(done / rate)
        counter.add_part(part, lead=0, content=samples, tail=0)
        if part.end_of_line:
            for block in _silence(counter.pause_units(part.pause_after_ms, 1), rate, channels):
                done += block.shape[1]
                yield block
            watch.advance(done / rate)


def measure_loudness(
    blocks: Iterable[Block], rate: int, layout: str, profile: LevelProfile | None = None
) -> float:
    """Integrated loudness (LUFS) of the blocks; -inf for silence. Fills ``profile``."""
    meter = LoudnessMeter(rate, layout)
    for block in blocks:
        meter.add(block)
        if profile is not None:
            profile.add(block)
    return meter.integrated()


def limited(blocks: Iterable[Block], limiter: TruePeakLimiter) -> Iterator[Block]:
    for block in blocks:
        out = limiter.process(block)
        if out.shape[1]:
            yield out
    tail = limiter.flush()
    if tail.shape[1]:
        yield tail


def planar_frame(block: Block, layout: str, rate: int, pts: int) -> av.AudioFrame:
    """A planar float block as a frame starting ``pts`` samples in (time base 1/rate)."""
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(block), format=_WORK_FORMAT, layout=layout
    )
    frame.sample_rate = rate
    frame.pts = pts
    frame.time_base = Fraction(1, rate)
    return frame


def open_encoder(
    codec_name: str, rate: int, layout: str, bit_rate: int, options: dict[str, str]
) -> av.AudioCodecContext:
    """An encoder of planar float, for writing its packets ourselves (pieces of a chapter)."""
    with av_errors(f"opening the {codec_name} encoder"):
        codec = av.CodecContext.create(codec_name, "w")
        assert isinstance(codec, av.AudioCodecContext)
        codec.sample_rate = rate
        codec.layout = layout
        codec.format = _WORK_FORMAT
        codec.bit_rate = bit_rate
        codec.options = options
        codec.open()
    return codec


def encode(
    blocks: Iterable[Block],
    path: Path,
    fmt: str,
    rate: int,
    layout: str,
    metadata: dict[str, str],
    before_close: Callable[[av.container.OutputContainer], None] | None = None,
) -> None:
    """Encode planar float blocks at ``rate`` to ``path`` in ``fmt``, metadata included.

    ``before_close`` may add what only the end knows (chapter marks) before the trailer.
    """
    encoding = ENCODINGS[fmt]
    with av_errors(f"encoding {fmt}"), av.open(str(path), "w", format=encoding.container) as out:
        stream = out.add_stream(
            encoding.codec, rate=rate, layout=layout, options=dict(encoding.options)
        )
        assert isinstance(stream, av.AudioStream)
        if encoding.bit_rate_per_channel is not None:
            stream.bit_rate = encoding.bit_rate_per_channel * (1 if layout == "mono" else 2)
        out.metadata.update(metadata)
        pts = 0
        for block in blocks:
            if not block.shape[1]:
                continue  # nothing to encode (a frame of no samples is refused)
            out.mux(stream.encode(planar_frame(block, layout, rate, pts)))
            pts += block.shape[1]
        out.mux(stream.encode(None))
        if before_close is not None:
            before_close(out)


def loudness_gain_db(target: float, measured: float) -> float | None:
    """The gain that brings ``measured`` to ``target``; None for silence (nothing to bring)."""
    if not math.isfinite(measured) or measured <= -70:
        return None
    return target - measured


def process_chapter(
    spec: ChapterSpec,
    fmt: str,
    path: Path,
    metadata: dict[str, str],
    watch: Watch,
    levels: PartLevels | None = None,
    measures: Sequence[PartMeasure | None] | None = None,
) -> Timeline:
    """Decode, join with pauses, normalise when asked, encode once to ``path``.

    ``levels`` is given the parts' window levels (for the subtitles' pauses). ``measures``
    (the parts measured as they came in) spare an mp3 chapter its first pass.
    """
    rate = output_rate(fmt, spec.sample_rate)
    layout = probe_layout(spec.parts[0].path, spec.response_format, spec.sample_rate)
    if fmt == "mp3":
        from pipeline.audio.mp3cores import finish_mp3  # it imports this module

        return finish_mp3(spec, path, metadata, layout, watch, levels, measures)
    timeline = Timeline(rate)
    gain = None
    if spec.loudness_lufs is not None:
        watch.start_pass(0.5)
        profile = LevelProfile(rate)
        blocks = chapter_blocks(spec, rate, layout, None, watch)
        measured = measure_loudness(blocks, rate, layout, profile)
        gain = loudness_gain_db(spec.loudness_lufs, measured)
        if gain is not None:
            gain = compensated_gain_db(gain, profile)
        watch.start_pass(0.5)
    source = chapter_blocks(spec, rate, layout, timeline, watch, levels)
    if gain is not None:
        limiter = TruePeakLimiter(rate, 1 if layout == "mono" else 2, gain)
        source = limited(source, limiter)
    encode(source, path, fmt, rate, layout, metadata)
    return timeline
