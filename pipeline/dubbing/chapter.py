"""A dubbed chapter, blocking (run it in a thread): its timed track and/or its clips.

``dub_lines`` gathers each line's chunk files and cue from a chapter's plan; ``dub_chapter``
writes the timed track (when every line has a start), the clips (when asked) and the
subtitles of the track, and says what became of every line (``DubOutcome``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.audio.model import Cue, normalized_output_format
from pipeline.audio.process import output_rate, probe_layout
from pipeline.audio.subtitles import RENDERERS
from pipeline.dubbing.clips import ClipWriter, clip_folder, relative
from pipeline.dubbing.lineaudio import Block
from pipeline.dubbing.model import DubLine, LineResult
from pipeline.dubbing.track import TrackFormat, write_track
from pipeline.fileio import atomic_path, atomic_write_text
from pipeline.planning import ChapterPlan


@dataclass(frozen=True)
class DubSpec:
    """What a dubbed chapter needs besides its lines."""

    response_format: str
    sample_rate: int
    output_format: str | None  # None: the API's format
    extension: str
    out_dir: Path
    chapter_id: str
    track_path: Path | None  # None: no timed track (the chapter is joined as usual)
    clips: bool
    subtitles: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class DubOutcome:
    duration_s: float | None = None
    results: list[LineResult] = field(default_factory=list)
    clips_csv: str | None = None
    subtitle_paths: list[Path] = field(default_factory=list)

    def report(self, timed: bool) -> dict[str, Any]:
        """The chapter's ``dubbing`` object in report.json."""
        out: dict[str, Any] = {"timed": timed}
        if self.clips_csv is not None:
            out["clips"] = self.clips_csv
        out["stretched"] = sum(r.stretch is not None for r in self.results)
        out["refit"] = sum(r.refit_speed is not None for r in self.results)
        out["overflows"] = [r.overflow_json() for r in self.results if r.overflow_s is not None]
        out["overlaps"] = [r.overlap_json() for r in self.results if r.overlap_s is not None]
        return out


def is_timed(plan: ChapterPlan) -> bool:
    lines = plan.chapter.lines
    return bool(lines) and all(line.start is not None for line in lines)


def dub_lines(plan: ChapterPlan, parts: Sequence[Path | None]) -> list[DubLine]:
    """Every line of ``plan``'s chapter with its chunk files, in order."""
    paths: list[list[Path]] = [[] for _ in plan.chapter.lines]
    for chunk, path in zip(plan.chunks, parts, strict=True):
        assert path is not None
        paths[chunk.line_index].append(path)
    return [
        DubLine(line.id, line.text, line.speaker, line.start, line.end, tuple(found),
                line.fit, line.max_speed, line.params.speed)
        for line, found in zip(plan.chapter.lines, paths, strict=True)
        if found
    ]


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
