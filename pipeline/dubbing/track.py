"""A timed track: every line placed at its cue's start, silence between, streamed out.

Lines are placed in order of start time (a script need not be sorted). What is written so far
is only ever the silence before a line and the ``pending`` samples from the current position
on: the tail of lines that overlap the next cue is mixed there, so memory holds one line and
its overlap, never the track. A line's position is ``round(start * rate)`` samples: exact in
wav and pcm; in mp3 and Opus the encoder's delay is declared in the file, so a decoder puts
it within a frame of that.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.audio.process import output_rate, probe_layout
from pipeline.dubbing.lineaudio import Block, channels_of, decode_line, encode_blocks, stretch
from pipeline.dubbing.model import DubLine, LineResult, slot_of

_BLOCK_S = 1  # silence is written a second at a time
# atempo's output length is within a few milliseconds of length / ratio: aim 1% short.
STRETCH_MARGIN = 1.01

LineSink = Callable[[DubLine, LineResult, Block | None], None]


@dataclass(frozen=True)
class TrackFormat:
    response_format: str  # the chunks' coding
    sample_rate: int  # the chunks' rate
    output_format: str  # the track's (normalised: opus, not ogg_opus)


def prepare_line(
    line: DubLine, slot: float | None, fmt: TrackFormat, rate: int, layout: str
) -> tuple[Block, LineResult, bool]:
    """The line's samples (stretched into ``slot`` when its fit says so), its result, and
    whether the samples differ from the received audio."""
    samples = decode_line(line.paths, fmt.response_format, fmt.sample_rate, rate, layout)
    audio_s = samples.shape[1] / rate
    result = LineResult(line.id, line.start, line.end, slot, audio_s, audio_s)
    if line.fit == "stretch" and slot is not None and slot > 0 and audio_s > slot:
        ratio = min(audio_s / slot * STRETCH_MARGIN, line.max_speed)
        samples = stretch(samples, ratio, rate, layout)
        result.stretch = round(ratio, 4)
        result.final_s = samples.shape[1] / rate
        return samples, result, True
    return samples, result, False


def write_track(
    lines: Sequence[DubLine], fmt: TrackFormat, path: Path, metadata: dict[str, str],
    on_line: LineSink | None = None,
    check: Callable[[], None] | None = None,
) -> tuple[float, list[LineResult]]:
    """Write the timed track of ``lines`` (every one with a start) to ``path``.

    Returns the track's duration in seconds and each line's result, in ``lines``' order.
    ``on_line`` gets every line as it is placed, with its samples when they were stretched;
    ``check`` is called before every second of silence (it raises to stop the track).
    """
    rate = output_rate(fmt.output_format, fmt.sample_rate)
    layout = probe_layout(lines[0].paths[0], fmt.response_format, fmt.sample_rate)
    results: list[LineResult | None] = [None] * len(lines)
    length = [0]

    def blocks() -> Iterator[Block]:
        channels = channels_of(layout)
        order = sorted(range(len(lines)), key=lambda i: (lines[i].start or 0.0, i))
        cursor = 0
        pending = np.zeros((channels, 0), dtype=np.float32)
        last_end = 0
        for i in order:
            line = lines[i]
            assert line.start is not None
            samples, result, changed = prepare_line(line, slot_of(lines, i), fmt, rate, layout)
            results[i] = result
            if on_line is not None:
                on_line(line, result, samples if changed else None)
            at = round(line.start * rate)
            if line.end is not None:
                last_end = max(last_end, round(line.end * rate))
            yield from _advance(pending, at - cursor, channels, rate, check)
            pending = pending[:, min(at - cursor, pending.shape[1]) :]
            cursor = at
            if pending.shape[1] < samples.shape[1]:
                grown = np.zeros((channels, samples.shape[1]), dtype=np.float32)
                grown[:, : pending.shape[1]] = pending
                pending = grown
            pending[:, : samples.shape[1]] += samples
        total = max(last_end, cursor + pending.shape[1])
        yield from _advance(pending, total - cursor, channels, rate, check)
        length[0] = total

    encode_blocks(blocks(), path, fmt.output_format, rate, layout, metadata)
    done = [r for r in results if r is not None]
    _overlaps(done)
    return length[0] / rate, done


def _advance(
    pending: Block, count: int, channels: int, rate: int, check: Callable[[], None] | None
) -> Iterator[Block]:
    """The first ``count`` samples from here: what is pending, then silence in blocks."""
    if count <= 0:
        return
    if pending.shape[1]:
        yield pending[:, :count]
    silence = count - min(count, pending.shape[1])
    block = rate * _BLOCK_S
    while silence > 0:
        if check is not None:
            check()
        n = min(block, silence)
        yield np.zeros((channels, n), dtype=np.float32)
        silence -= n


def _overlaps(results: list[LineResult]) -> None:
    """Note on each result how far its audio runs past the start of the next cue."""
    timed = sorted(
        (r for r in results if r.start is not None), key=lambda r: r.start or 0.0
    )
    for here, after in zip(timed, timed[1:], strict=False):
        assert here.start is not None and after.start is not None
        over = here.start + here.final_s - after.start
        if over > 0.0005:
            here.overlap_s = over
