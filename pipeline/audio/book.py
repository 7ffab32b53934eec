"""One AAC audiobook (.m4b) for the whole job, with a chapter mark per chapter."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av

from pipeline.audio.avutil import av_errors
from pipeline.audio.model import AudioError
from pipeline.audio.process import decode_file, encode, open_part
from pipeline.fileio import atomic_path

if TYPE_CHECKING:
    from av.container.core import Chapter  # a TypedDict of PyAV's stubs only


def _probe(path: Path, pcm_sample_rate: int | None) -> tuple[int, str]:
    fmt = _format_of(path, pcm_sample_rate)
    with av_errors(f"reading {path.name}"), open_part(path, fmt, pcm_sample_rate or 0) as c:
        if not c.streams.audio:
            raise AudioError(f"{path.name}: no audio stream")
        context = c.streams.audio[0].codec_context
        return context.sample_rate, "mono" if context.channels == 1 else "stereo"


def _format_of(path: Path, pcm_sample_rate: int | None) -> str:
    if path.suffix.lower() != ".pcm":
        return "auto"
    if pcm_sample_rate is None:
        raise AudioError(f"{path.name}: a headerless .pcm chapter needs pcm_sample_rate")
    return "pcm"


def build_book(
    chapters: Sequence[tuple[Path, str]],
    out_path: Path,
    *,
    title: str | None = None,
    artist: str | None = None,
    pcm_sample_rate: int | None = None,
) -> Path:
    """Write ``out_path`` (.m4b): every chapter file in order, AAC, one mark per chapter.

    ``chapters`` are (chapter file, chapter title). The book takes the first chapter's rate
    and channels; the others are resampled to them. Marks start at the exact decoded sample
    where each chapter starts.
    """
    if not chapters:
        raise AudioError("a book needs at least one chapter")
    rate, layout = _probe(chapters[0][0], pcm_sample_rate)
    marks: list[Chapter] = []

    def frames() -> Iterator[av.AudioFrame]:
        start = 0
        for index, (path, chapter_title) in enumerate(chapters):
            fmt = _format_of(path, pcm_sample_rate)
            samples = 0
            for frame in decode_file(path, fmt, pcm_sample_rate or 0, rate, layout):
                samples += frame.samples
                yield frame
            mark: Chapter = {
                "id": index + 1,
                "start": start,
                "end": start + samples,
                "time_base": Fraction(1, rate),
                "metadata": {"title": chapter_title},
            }
            marks.append(mark)
            start += samples

    metadata = {k: v for k, v in (("title", title), ("album", title), ("artist", artist)) if v}
    with atomic_path(out_path) as tmp:
        encode(
            frames(),
            tmp,
            "m4a",
            rate,
            layout,
            metadata,
            before_close=lambda container: container.set_chapters(marks),
        )
    return out_path
