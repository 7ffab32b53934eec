"""assemble_chapter: the parts of one chapter to one file, plus its subtitles."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from pipeline.audio.control import CancelCheck, ProgressFn, Watch
from pipeline.audio.join import join_mp3, join_opus, join_pcm, join_wav
from pipeline.audio.model import (
    OUTPUT_FORMATS,
    SUBTITLE_FORMATS,
    AudioError,
    ChapterAudio,
    ChapterSpec,
    is_lossless_join,
    normalized_output_format,
)
from pipeline.audio.partmeasure import PartMeasure
from pipeline.audio.pauses import PartLevels, Pause, decoded_pauses
from pipeline.audio.process import output_rate, probe_layout, process_chapter
from pipeline.audio.readable import readable_cues
from pipeline.audio.subtitles import RENDERERS
from pipeline.audio.tags import write_id3_tags, write_mp4_tags
from pipeline.audio.timeline import Timeline
from pipeline.fileio import atomic_path, atomic_write_text
from pipeline.speech import FORMATS

_JOINERS: dict[str, Callable[[ChapterSpec, BinaryIO, Watch], Timeline]] = {
    "pcm": join_pcm,
    "wav": join_wav,
    "mp3": join_mp3,
    "ogg_opus": join_opus,
}
_WRITE_BUFFER = 1 << 20


def _check_spec(spec: ChapterSpec) -> str:
    if not spec.parts:
        raise AudioError(f"{spec.out_path.name}: a chapter needs at least one part")
    if spec.response_format not in FORMATS:
        raise AudioError(f"unknown response format {spec.response_format!r}")
    fmt = normalized_output_format(spec.response_format, spec.output_format)
    if fmt not in OUTPUT_FORMATS:
        raise AudioError(f"unknown output format {spec.output_format!r}")
    for kind in spec.subtitles:
        if kind not in SUBTITLE_FORMATS:
            raise AudioError(f"unknown subtitle format {kind!r}")
    return fmt


def _metadata(spec: ChapterSpec) -> dict[str, str]:
    found = (("title", spec.title), ("album", spec.album), ("track", spec.track))
    return {key: str(value) for key, value in found if value is not None and value != ""}


def _tag(spec: ChapterSpec, fmt: str, path: Path) -> None:
    """The book's tags into a finished mp3 or m4a chapter (other formats keep FFmpeg's)."""
    if spec.book is None:
        return
    if fmt == "mp3":
        write_id3_tags(path, spec.book, chapter_title=spec.title, track=spec.track)
    elif fmt == "m4a":
        write_mp4_tags(path, spec.book, chapter_title=spec.title)


def _decoded_pauses(spec: ChapterSpec, watch: Watch, duration_s: float) -> list[list[Pause]]:
    """Each part decoded on its own for its pauses: the lossless join decodes nothing.

    This pass is most of a lossless chapter's work (the join only copies frames), so it
    reports progress too: without it, a stop asked for from a progress callback would only
    be seen once the chapter was already written.
    """
    rate = output_rate(normalized_output_format(spec.response_format, None), spec.sample_rate)
    layout = probe_layout(spec.parts[0].path, spec.response_format, spec.sample_rate)
    found = []
    for i, part in enumerate(spec.parts):
        found.append(
            decoded_pauses(part.path, spec.response_format, spec.sample_rate, rate, layout)
        )
        watch.advance(duration_s * (i + 1) / len(spec.parts))
    return found


def assemble_chapter(
    spec: ChapterSpec,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelCheck | None = None,
    measures: Sequence[PartMeasure | None] | None = None,
) -> ChapterAudio:
    """Join ``spec.parts`` into ``spec.out_path`` and write its subtitles; blocking.

    Lossless join when the chapter keeps the API's format and no loudness target is set,
    else decode, normalise and encode once. Every file appears whole or not at all: on
    FinishCancelled (``cancel`` said stop) or any error, none of them. ``progress`` gets
    the seconds of audio done (see control.Watch). ``measures``, one per part (None: not
    measured), are the parts measured as they came in (``partmeasure``): an mp3 chapter
    whose parts all have one starts at its second pass. Safe to run in several threads at
    once, one chapter each.
    """
    fmt = _check_spec(spec)
    watch = Watch(progress, cancel, spec.out_path.name)
    watch.check()
    subtitle_paths = [spec.out_path.with_suffix(f".{kind}") for kind in spec.subtitles]
    with atomic_path(spec.out_path) as tmp:
        levels = PartLevels(output_rate(fmt, spec.sample_rate))
        if is_lossless_join(spec):
            if spec.subtitles:
                watch.start_pass(0.5)
            with open(tmp, "wb", buffering=_WRITE_BUFFER) as out:
                timeline = _JOINERS[spec.response_format](spec, out, watch)
            pauses = []
            if spec.subtitles:
                watch.start_pass(0.5)
                pauses = _decoded_pauses(spec, watch, timeline.duration_s)
        else:
            sink = levels if spec.subtitles else None
            timeline = process_chapter(spec, fmt, tmp, _metadata(spec), watch, sink, measures)
            pauses = levels.pauses(len(spec.parts))
        _tag(spec, fmt, tmp)
        cues = tuple(timeline.cues)
        shown = readable_cues(cues, pauses) if spec.subtitles else []
        texts = [RENDERERS[kind](shown) for kind in spec.subtitles]
        # The last look before anything gets its final name: after it, all of them do.
        watch.check()
        for path, text in zip(subtitle_paths, texts, strict=True):
            atomic_write_text(path, text)
    watch.complete(timeline.duration_s)
    return ChapterAudio(spec.out_path, timeline.duration_s, cues, tuple(subtitle_paths))
