"""A dubbed chapter, blocking (run it in a thread): its timed track and/or its clips.

``dub_chapter`` writes the timed track (when every line has a start), the clips (when asked)
and the subtitles of the track, and says what became of every line (``DubOutcome``). It is
imported only when a chapter is dubbed: it needs PyAV and numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pipeline.audio.model import Cue, normalized_output_format
from pipeline.audio.process import output_rate, probe_layout
from pipeline.audio.subtitles import RENDERERS
from pipeline.dubbing.clips import ClipWriter, clip_folder, relative
from pipeline.dubbing.lineaudio import Block
from pipeline.dubbing.model import DubLine, DubOutcome, DubSpec, LineResult
from pipeline.dubbing.track import TrackFormat, write_track
from pipeline.fileio import atomic_path, atomic_write_text


def dub_chapter(spec: DubSpec, lines: Sequence[DubLine]) -> DubOutcome:
    fmt = normalized_output_format(spec.response_format, spec.output_format)
    rate = output_rate(fmt, spec.sample_rate)
    layout = probe_layout(lines[0].paths[0], spec.response_format, spec.sample_rate)
    outcome = DubOutcome()
    clips = None
    if spec.clips:
        folder = clip_folder(spec.out_dir, spec.chapter_id)
        clips = ClipWriter(folder, spec.response_format, spec.sample_rate, fmt, spec.extension,
                           rate, layout)

    def on_line(line: DubLine, result: LineResult | None, samples: Block | None) -> None:
        if clips is not None:
            clips.add(line, result, samples)

    if spec.track_path is not None:
        track = TrackFormat(spec.response_format, spec.sample_rate, fmt)
        with atomic_path(spec.track_path) as tmp:
            outcome.duration_s, outcome.results = write_track(
                lines, track, tmp, spec.metadata, on_line
            )
        outcome.subtitle_paths = _subtitles(spec, outcome.results, lines)
    else:
        for line in lines:
            on_line(line, None, None)
    if clips is not None:
        outcome.clips_csv = relative(clips.finish(), spec.out_dir)
    return outcome


def _subtitles(spec: DubSpec, results: list[LineResult], lines: Sequence[DubLine]) -> list[Path]:
    assert spec.track_path is not None
    texts = {line.id: line.text for line in lines}
    cues = tuple(
        Cue(round((r.start or 0) * 1000), round(((r.start or 0) + r.final_s) * 1000),
            texts[r.id], r.id)
        for r in sorted(results, key=lambda r: r.start or 0.0)
    )
    written = []
    for kind in spec.subtitles:
        path = spec.track_path.with_suffix(f".{kind}")
        atomic_write_text(path, RENDERERS[kind](cues))
        written.append(path)
    return written
