"""Subtitle files (``.srt``, ``.vtt``, ``.ass``, ``.ssa``) as a manifest: one timed chapter.

The parsing is ``pipeline.books.subtitles`` (pysubs2, markup stripped, speaker found, timing
lines checked as FILE:LINE); this module only adapts its neutral book to the manifest's
neutral model. Each cue becomes a line whose id is its cue number (``cue-0001``, stable when
cues are skipped, so a clip keeps its name) and whose ``start``/``end`` are the cue's times;
the chapter id is the file's stem, as for a chapter file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pipeline.books.model import SourceLine as BookLine
from pipeline.books.subtitles import SubtitleOptions, read_subtitles
from pipeline.errors import ManifestError
from pipeline.manifest.model import Source, SourceChapter, SourceLine
from pipeline.manifest.readers import ReadContext

CUE_ID_WIDTH = 4


def cue_id(index: int) -> str:
    """The line id of the ``index``-th cue (1-based): ``cue-0001``."""
    return f"cue-{index:0{CUE_ID_WIDTH}d}"


def read(path: Path, context: ReadContext) -> Source:
    return Source(_chapters(path, context))


def _chapters(path: Path, context: ReadContext) -> Iterator[SourceChapter]:
    try:
        book = read_subtitles(path, SubtitleOptions())
    except ManifestError as e:
        raw = str(path)
        for p in e.problems:
            context.problem(context.display if p.file == raw else p.file, p.line, p.message)
        return
    if not book.chapters:
        context.problem(context.display, None, "no cue to speak: every cue is empty or a comment")
        return
    for chapter in book.chapters:
        lines = tuple(_line(line, context.display, n) for n, line in enumerate(chapter.lines, 1))
        yield SourceChapter(
            chapter.id, chapter.title, context.display, chapter.line, lines, context.outer
        )


def _line(line: BookLine, file: str, position: int) -> SourceLine:
    index = line.fields.get("index", position)
    return SourceLine(
        line.text,
        file,
        line.line,
        id=cue_id(int(index)),
        speaker=line.speaker,
        start=line.start_s,
        end=line.end_s if line.end_s is not None and line.end_s > (line.start_s or 0) else None,
    )
