"""A dubbed chapter, blocking (run it in a thread): its timed track and/or its clips.

``dub_chapter`` writes the timed track (when every line has a start), the clips (when asked)
and the subtitles of the track, and says what became of every line (``DubOutcome``). What
is intact from an earlier run with the same inputs is kept (``incremental``): the track with
its subtitles, and each clip on its own. A ``cancel`` is seen between lines (and between
seconds of silence): FinishCancelled, no track or subtitle written, the clips done so far
recorded. It is imported only when a chapter is dubbed: it needs PyAV and numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.audio.control import CancelCheck, ProgressFn, Watch
from pipeline.audio.fingerprint import forget_output
from pipeline.audio.model import Cue, normalized_output_format
from pipeline.audio.process import output_rate, probe_layout
from pipeline.audio.subtitles import RENDERERS
from pipeline.dubbing.clips import ClipWriter, clip_folder, relative
from pipeline.dubbing.incremental import (
    clip_fingerprint,
    kept_track,
    record_track,
    track_fingerprint,
)
from pipeline.dubbing.lineaudio import Block
from pipeline.dubbing.model import DubLine, DubOutcome, DubSpec, LineResult, slot_of
from pipeline.dubbing.track import TrackFormat, prepare_line, write_track
from pipeline.fileio import atomic_path, atomic_write_text


@dataclass(frozen=True)
class _Job:
    """One dubbed chapter's settings, as the helpers below share them."""

    spec: DubSpec
    lines: Sequence[DubLine]
    fmt: str  # the output format, normalised
    rate: int
    layout: str
    watch: Watch

    def clip_fingerprint(self, index: int) -> str | None:
        return clip_fingerprint(self.spec, self.lines[index], slot_of(self.lines, index),
                                self.fmt)


def dub_chapter(
    spec: DubSpec,
    lines: Sequence[DubLine],
    *,
    progress: ProgressFn | None = None,
    cancel: CancelCheck | None = None,
) -> DubOutcome:
    fmt = normalized_output_format(spec.response_format, spec.output_format)
    rate = output_rate(fmt, spec.sample_rate)
    layout = probe_layout(lines[0].paths[0], spec.response_format, spec.sample_rate)
    job = _Job(spec, lines, fmt, rate, layout, Watch(progress, cancel, spec.chapter_id))
    outcome = DubOutcome()
    clips = None
    if spec.clips:
        folder = clip_folder(spec.out_dir, spec.chapter_id)
        clips = ClipWriter(folder, spec.response_format, spec.sample_rate, fmt, spec.extension,
                           rate, layout)
    try:
        if spec.track_path is not None:
            _timed(job, outcome, clips)
        elif clips is not None:
            done = 0.0
            for index, line in enumerate(lines):
                job.watch.check()
                done += clips.add(line, None, None, job.clip_fingerprint(index))
                job.watch.advance(done)
            _last_check(job, outcome, clips)
    finally:
        if clips is not None:
            clips.records.save()  # also when stopped: the clips written so far are kept
    refits = {line.id: line.refit for line in lines}
    for result in outcome.results:
        result.refit_speed = refits.get(result.id)
    job.watch.complete(outcome.duration_s or job.watch.done)
    return outcome


def _timed(job: _Job, outcome: DubOutcome, clips: ClipWriter | None) -> None:
    spec, lines = job.spec, job.lines
    assert spec.track_path is not None
    track = TrackFormat(spec.response_format, spec.sample_rate, job.fmt)
    subtitle_paths = [spec.track_path.with_suffix(f".{kind}") for kind in spec.subtitles]
    fingerprint = track_fingerprint(spec, lines, job.fmt)
    outcome.fingerprint = fingerprint
    kept = None
    if fingerprint is not None:
        kept = kept_track(spec.track_path, fingerprint, subtitle_paths, len(lines))
    if kept is not None:
        outcome.duration_s, outcome.results = kept
        outcome.subtitle_paths = subtitle_paths
        outcome.track_reused = True
        if clips is not None:
            _kept_track_clips(job, outcome.results, track, clips)
        _last_check(job, outcome, clips)
        return
    forget_output(spec.track_path)  # first: a stopped or failed rebuild is never taken as done
    index_of = {id(line): i for i, line in enumerate(lines)}

    def on_line(line: DubLine, result: LineResult, samples: Block | None) -> None:
        job.watch.advance((result.start or 0.0) + result.final_s)
        if clips is not None:
            clips.add(line, result, samples, job.clip_fingerprint(index_of[id(line)]))

    with atomic_path(spec.track_path) as tmp:
        outcome.duration_s, outcome.results = write_track(
            lines, track, tmp, spec.metadata, on_line, check=job.watch.check
        )
        _last_check(job, outcome, clips)  # stopped here: the track is not given its name
    outcome.subtitle_paths = _subtitles(spec, outcome.results, lines)
    if fingerprint is not None:
        assert outcome.duration_s is not None
        record_track(spec.track_path, fingerprint, outcome.subtitle_paths, outcome.duration_s,
                     outcome.results)


def _last_check(job: _Job, outcome: DubOutcome, clips: ClipWriter | None) -> None:
    """The last chance to stop; then clips.csv. What follows it (the track's rename, its
    subtitles and record) takes milliseconds and is not stopped: a stop leaves either the
    whole chapter or none of its track, subtitles and clips.csv."""
    job.watch.check()
    if clips is not None:
        outcome.clips_csv = relative(clips.finish(), job.spec.out_dir)
        outcome.clips_reused = clips.reused


def _kept_track_clips(
    job: _Job, results: list[LineResult], track: TrackFormat, clips: ClipWriter
) -> None:
    """The clips of a kept track, in the track's order (their names depend on it): each kept
    when intact, else written again, stretched as the track's line was."""
    lines = job.lines
    order = sorted(range(len(lines)), key=lambda i: (lines[i].start or 0.0, i))
    for i in order:
        line, result = lines[i], results[i]

        def stretched(line: DubLine = line, i: int = i) -> Block | None:
            samples, _, changed = prepare_line(
                line, slot_of(lines, i), track, job.rate, job.layout
            )
            return samples if changed else None

        clips.add(line, result, None, job.clip_fingerprint(i),
                  stretched if result.stretch is not None else None)
        job.watch.advance((result.start or 0.0) + result.final_s)


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
