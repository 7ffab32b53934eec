"""What the dubbing stages exchange: a line with its cue and audio, and what became of it.

Light on purpose (no PyAV, no numpy): finishing and the runner import it for every run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pipeline.planning import ChapterPlan

# A line this much longer than its slot is not reported: below a millisecond, nobody hears it.
OVERFLOW_TOLERANCE_S = 0.001


@dataclass(frozen=True)
class DubLine:
    """One line of a chapter: its text, cue, speaker, fit settings and chunk files in order."""

    id: str
    text: str
    speaker: str | None
    start: float | None
    end: float | None
    paths: tuple[Path, ...]
    fit: str = "none"
    max_speed: float = 1.25
    speed: float | None = None  # the speed the audio was asked at (None: the API's 1.0)
    keys: tuple[str, ...] = ()  # the chunks' cache keys (they stand for the audio); () unknown
    refit: float | None = None  # the speed of a faster second request (fit speed), if made


class Timed(Protocol):
    @property
    def start(self) -> float | None: ...
    @property
    def end(self) -> float | None: ...


def slot_of(lines: Sequence[Timed], index: int) -> float | None:
    """Seconds the ``index``-th line may last: to its cue's end, else to the next cue's start."""
    line = lines[index]
    if line.start is None:
        return None
    if line.end is not None:
        return line.end - line.start
    later = [o.start for o in lines if o.start is not None and o.start > line.start]
    return min(later) - line.start if later else None


@dataclass
class LineResult:
    """A placed (or clipped) line: its audio as received and as written."""

    id: str
    start: float | None
    end: float | None
    slot_s: float | None
    audio_s: float  # the received audio (after a faster request, if one was made)
    final_s: float  # what was written: audio_s, or less after a stretch
    stretch: float | None = None  # the atempo ratio applied, if any
    refit_speed: float | None = None  # the speed of a second request, if one was made
    overlap_s: float | None = None  # how far the audio runs into the next cue's start

    @property
    def overflow_s(self) -> float | None:
        if self.slot_s is None or self.final_s <= self.slot_s + OVERFLOW_TOLERANCE_S:
            return None
        return self.final_s - self.slot_s

    def overflow_json(self) -> dict[str, Any]:
        assert self.slot_s is not None and self.overflow_s is not None
        return {
            "line": self.id,
            "slot_s": round(self.slot_s, 3),
            "audio_s": round(self.final_s, 3),
            "overflow_s": round(self.overflow_s, 3),
        }

    def overlap_json(self) -> dict[str, Any]:
        assert self.overlap_s is not None
        return {"line": self.id, "overlap_s": round(self.overlap_s, 3)}


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
    fingerprint: str | None = None  # of the timed track's inputs (None: not recorded)
    track_reused: bool = False  # the track and its subtitles of an earlier run were kept
    clips_reused: int = 0  # clips of an earlier run kept as they were

    def report(self, timed: bool) -> dict[str, Any]:
        """The chapter's ``dubbing`` object in report.json."""
        out: dict[str, Any] = {"timed": timed}
        if self.clips_csv is not None:
            out["clips"] = self.clips_csv
        out["stretched"] = sum(r.stretch is not None for r in self.results)
        out["refit"] = sum(r.refit_speed is not None for r in self.results)
        out["overflows"] = [r.overflow_json() for r in self.results if r.overflow_s is not None]
        out["overlaps"] = [r.overlap_json() for r in self.results if r.overlap_s is not None]
        if timed:
            out["reused_track"] = self.track_reused
        if self.clips_csv is not None:
            out["reused_clips"] = self.clips_reused
        return out


def is_timed(plan: ChapterPlan) -> bool:
    lines = plan.chapter.lines
    return bool(lines) and all(line.start is not None for line in lines)


def dub_lines(
    plan: ChapterPlan,
    parts: Sequence[Path | None],
    keys: Sequence[str] = (),
    refits: Mapping[str, float] | None = None,
) -> list[DubLine]:
    """Every line of ``plan``'s chapter with its chunk files, in order.

    ``keys`` are the chunks' cache keys in the plan's order (none: the lines are not
    fingerprinted, so never kept from an earlier run); ``refits`` the speeds lines were
    asked again at, by line id.
    """
    paths: list[list[Path]] = [[] for _ in plan.chapter.lines]
    line_keys: list[list[str]] = [[] for _ in plan.chapter.lines]
    known = len(keys) == len(plan.chunks)
    for k, (chunk, path) in enumerate(zip(plan.chunks, parts, strict=True)):
        assert path is not None
        paths[chunk.line_index].append(path)
        if known:
            line_keys[chunk.line_index].append(keys[k])
    refits = refits or {}
    return [
        DubLine(line.id, line.text, line.speaker, line.start, line.end, tuple(found),
                line.fit, line.max_speed, line.params.speed, tuple(mine), refits.get(line.id))
        for line, found, mine in zip(plan.chapter.lines, paths, line_keys, strict=True)
        if found
    ]
