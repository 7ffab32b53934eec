"""The decoding path: parts to PCM, pauses, resampling, EBU R128 loudness, one encode.

Taken when the chapter's format differs from the API's or a loudness target is set. Every
pass streams from the part files, one decoded frame at a time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.filter
import numpy as np

from pipeline.audio.avutil import av_errors, captured_log
from pipeline.audio.model import TRUE_PEAK_CEILING_DBTP, AudioError, ChapterSpec
from pipeline.audio.timeline import Timeline
from pipeline.speech import opus_rate

_WORK_FORMAT = "flt"
_PAUSE_BLOCK_S = 1


@dataclass(frozen=True)
class Encoding:
    container: str
    codec: str
    bit_rate_per_channel: int | None  # None: lossless


ENCODINGS = {
    "mp3": Encoding("mp3", "libmp3lame", 64_000),
    "opus": Encoding("opus", "libopus", 48_000),
    "flac": Encoding("flac", "flac", None),
    "m4a": Encoding("ipod", "aac", 96_000),
    "wav": Encoding("wav", "pcm_s16le", None),
    "pcm": Encoding("s16le", "pcm_s16le", None),
}


@dataclass(frozen=True)
class Loudness:
    """loudnorm's first-pass measurement of a whole chapter."""

    integrated: float
    true_peak: float
    lra: float
    threshold: float
    offset: float


def output_rate(output_format: str, sample_rate: int) -> int:
    return opus_rate(sample_rate) if output_format == "opus" else sample_rate


def open_part(path: Path, response_format: str, sample_rate: int) -> av.container.InputContainer:
    if response_format == "pcm":
        # The API's pcm is headerless s16le mono at the requested rate.
        options = {"sample_rate": str(sample_rate), "ch_layout": "mono"}
        return av.open(str(path), "r", format="s16le", options=options)
    return av.open(str(path), "r")


def decode_file(
    path: Path, response_format: str, sample_rate: int, rate: int, layout: str
) -> Iterator[av.AudioFrame]:
    """A file's audio as float frames at ``rate`` in ``layout``, resampler flushed at its end."""
    resampler = av.AudioResampler(format=_WORK_FORMAT, layout=layout, rate=rate)
    with av_errors(f"decoding {path.name}"), open_part(path, response_format, sample_rate) as c:
        for frame in c.decode(audio=0):
            # Timestamps are renumbered downstream; a part's own (Opus pre-skip makes them
            # negative) must not make the resampler pad or drop samples.
            frame.pts = None
            yield from resampler.resample(frame)
        yield from resampler.resample(None)


def probe_layout(path: Path, response_format: str, sample_rate: int) -> str:
    with av_errors(f"reading {path.name}"), open_part(path, response_format, sample_rate) as c:
        if not c.streams.audio:
            raise AudioError(f"{path.name}: no audio stream")
        channels = c.streams.audio[0].codec_context.channels
    return "mono" if channels == 1 else "stereo"


def _silence(samples: int, rate: int, layout: str) -> Iterator[av.AudioFrame]:
    channels = 1 if layout == "mono" else 2
    block = rate * _PAUSE_BLOCK_S
    while samples > 0:
        n = min(block, samples)
        zeros = np.zeros((1, n * channels), dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(zeros, format=_WORK_FORMAT, layout=layout)
        frame.sample_rate = rate
        yield frame
        samples -= n


def chapter_frames(
    spec: ChapterSpec, rate: int, layout: str, timeline: Timeline | None
) -> Iterator[av.AudioFrame]:
    """The chapter as frames: every part decoded, then its pause; counted in ``timeline``."""
    counter = timeline or Timeline(rate)
    for part in spec.parts:
        samples = 0
        for frame in decode_file(part.path, spec.response_format, spec.sample_rate, rate, layout):
            samples += frame.samples
            yield frame
        counter.add_part(part, lead=0, content=samples, tail=0)
        if part.end_of_line:
            yield from _silence(counter.pause_units(part.pause_after_ms, 1), rate, layout)


class _Chain:
    """abuffer -> filters -> abuffersink, fed with frames and drained as it goes."""

    def __init__(self, rate: int, layout: str, filters: list[tuple[str, str]]) -> None:
        self.graph = av.filter.Graph()
        self.rate = rate
        node = self.graph.add_abuffer(
            format=_WORK_FORMAT, sample_rate=rate, layout=layout, time_base=Fraction(1, rate)
        )
        for name, args in filters:
            nxt = self.graph.add(name, args)
            node.link_to(nxt)
            node = nxt
        node.link_to(self.graph.add("abuffersink"))
        self.graph.configure()
        self.pts = 0

    def run(self, frames: Iterator[av.AudioFrame]) -> Iterator[av.AudioFrame]:
        for frame in frames:
            frame.pts = self.pts
            frame.time_base = Fraction(1, self.rate)
            self.pts += frame.samples
            self.graph.push(frame)
            yield from self._drain()
        self.graph.push(None)
        yield from self._drain()

    def _drain(self) -> Iterator[av.AudioFrame]:
        while True:
            try:
                out = self.graph.pull()
            except (av.BlockingIOError, av.EOFError):
                return
            assert isinstance(out, av.AudioFrame)
            yield out


def measure(frames: Iterator[av.AudioFrame], rate: int, layout: str, target: float) -> Loudness:
    """loudnorm's first pass: it prints its measurement when the graph is freed."""
    with av_errors("measuring loudness"):
        chain = _Chain(rate, layout, [("loudnorm", _loudnorm_args(target, "json"))])
        for _ in chain.run(frames):
            pass
        with captured_log() as logs:
            del chain  # loudnorm logs its JSON from its uninit
    return _parse_loudnorm(" ".join(line[2] for line in logs if line[1] == "loudnorm"))


def _loudnorm_args(target: float, print_format: str) -> str:
    # LRA at its maximum so that linear mode is never refused for a wide loudness range.
    return f"I={target}:TP={TRUE_PEAK_CEILING_DBTP}:LRA=50:print_format={print_format}"


def _parse_loudnorm(text: str) -> Loudness:
    start = text.find("{")
    if start < 0:
        raise AudioError("loudnorm printed no measurement")
    try:
        values, _ = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError as e:
        raise AudioError(f"loudnorm printed an unreadable measurement: {e}") from e
    return Loudness(
        float(values["input_i"]),
        float(values["input_tp"]),
        float(values["input_lra"]),
        float(values["input_thresh"]),
        float(values["target_offset"]),
    )


def normalise_filters(target: float, measured: Loudness, rate: int) -> list[tuple[str, str]]:
    """Second pass: linear gain to the target from the measured values, back to ``rate``.

    loudnorm itself falls back to its dynamic mode (a true-peak limiter) when the linear gain
    would push the true peak over the ceiling.
    """
    if not math.isfinite(measured.integrated) or measured.integrated < -70:
        return []  # silence: there is no loudness to bring anywhere
    args = (
        f"{_loudnorm_args(target, 'none')}:measured_I={measured.integrated}"
        f":measured_TP={measured.true_peak}:measured_LRA={measured.lra}"
        f":measured_thresh={measured.threshold}:offset={measured.offset}:linear=true"
    )
    # loudnorm works at 192 kHz; bring the result back to the chapter's rate.
    return [("loudnorm", args), ("aresample", str(rate))]


def encode(
    frames: Iterator[av.AudioFrame],
    path: Path,
    fmt: str,
    rate: int,
    layout: str,
    metadata: dict[str, str],
    before_close: Callable[[av.container.OutputContainer], None] | None = None,
) -> None:
    """Encode float frames at ``rate`` to ``path`` in ``fmt``, metadata included.

    ``before_close`` may add what only the end knows (chapter marks) before the trailer.
    """
    encoding = ENCODINGS[fmt]
    with av_errors(f"encoding {fmt}"), av.open(str(path), "w", format=encoding.container) as out:
        stream = out.add_stream(encoding.codec, rate=rate, layout=layout)
        assert isinstance(stream, av.AudioStream)
        if encoding.bit_rate_per_channel is not None:
            stream.bit_rate = encoding.bit_rate_per_channel * (1 if layout == "mono" else 2)
        out.metadata.update(metadata)
        pts = 0
        for frame in frames:
            frame.pts = pts
            frame.time_base = Fraction(1, rate)
            frame.sample_rate = rate
            pts += frame.samples
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if before_close is not None:
            before_close(out)


def process_chapter(spec: ChapterSpec, fmt: str, path: Path, metadata: dict[str, str]) -> Timeline:
    """Decode, join with pauses, normalise when asked, encode once to ``path``."""
    rate = output_rate(fmt, spec.sample_rate)
    layout = probe_layout(spec.parts[0].path, spec.response_format, spec.sample_rate)
    timeline = Timeline(rate)

    def frames(counter: Timeline | None) -> Iterator[av.AudioFrame]:
        return chapter_frames(spec, rate, layout, counter)

    if spec.loudness_lufs is None:
        encode(frames(timeline), path, fmt, rate, layout, metadata)
        return timeline
    measured = measure(frames(None), rate, layout, spec.loudness_lufs)
    filters = normalise_filters(spec.loudness_lufs, measured, rate)
    with av_errors("normalising loudness"):
        chain = _Chain(rate, layout, filters) if filters else None
        source = frames(timeline)
        encode(chain.run(source) if chain else source, path, fmt, rate, layout, metadata)
    return timeline
