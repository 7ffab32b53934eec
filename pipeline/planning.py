"""Job -> chunks: what would be sent, before anything is sent."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pipeline.chunking import split_text
from pipeline.errors import ConfigError, ManifestError, Problem
from pipeline.manifest import Chapter, Job
from pipeline.speech import MAX_INPUT_BYTES, SpeechParams, SpeechRequest


@dataclass(frozen=True)
class Chunk:
    """One request's worth of text, and where it belongs in its chapter."""

    chapter_id: str
    line_id: str
    line_index: int  # 0-based position of the line in its chapter
    index: int  # 0-based position of the chunk in its line
    last_in_line: bool
    text: str
    params: SpeechParams
    pause_after_ms: int  # silence after this chunk: the line's pause on its last chunk, else 0

    @property
    def characters(self) -> int:
        return len(self.text)

    @property
    def utf8_bytes(self) -> int:
        return len(self.text.encode("utf-8"))

    def request(self) -> SpeechRequest:
        return SpeechRequest(self.text, self.params)


@dataclass(frozen=True)
class ChapterPlan:
    chapter: Chapter
    chunks: tuple[Chunk, ...]

    @property
    def response_format(self) -> str:
        return self.chunks[0].params.format if self.chunks else "mp3"

    @property
    def sample_rate(self) -> int:
        return self.chunks[0].params.rate if self.chunks else 24000


@dataclass(frozen=True)
class Plan:
    job: Job
    chapters: tuple[ChapterPlan, ...]
    max_chunk_bytes: int

    def chunks(self) -> Iterator[Chunk]:
        for chapter in self.chapters:
            yield from chapter.chunks

    @property
    def lines(self) -> int:
        return sum(len(c.chapter.lines) for c in self.chapters)

    @property
    def chunk_count(self) -> int:
        return sum(len(c.chunks) for c in self.chapters)

    @property
    def characters(self) -> int:
        return sum(c.characters for c in self.chunks())

    @property
    def utf8_bytes(self) -> int:
        return sum(c.utf8_bytes for c in self.chunks())


def plan_chapter(chapter: Chapter, max_chunk_bytes: int = MAX_INPUT_BYTES) -> ChapterPlan:
    """Cut every line of ``chapter``; a line that cannot be cut is a ManifestError at its line."""
    chunks: list[Chunk] = []
    problems: list[Problem] = []
    for line_index, line in enumerate(chapter.lines):
        try:
            pieces = split_text(line.text, max_chunk_bytes)
        except ValueError as e:
            problems.append(Problem(line.file, line.lineno, f"line {line.id}: {e}"))
            continue
        for index, text in enumerate(pieces):
            last = index == len(pieces) - 1
            chunks.append(
                Chunk(
                    chapter_id=chapter.id,
                    line_id=line.id,
                    line_index=line_index,
                    index=index,
                    last_in_line=last,
                    text=text,
                    params=line.params,
                    pause_after_ms=line.pause_ms if last else 0,
                )
            )
    if problems:
        raise ManifestError(problems)
    return ChapterPlan(chapter, tuple(chunks))


def plan_job(job: Job, max_chunk_bytes: int = MAX_INPUT_BYTES) -> Plan:
    if not 1 <= max_chunk_bytes <= MAX_INPUT_BYTES:
        raise ConfigError(f"max_chunk_bytes must be 1 to {MAX_INPUT_BYTES}, not {max_chunk_bytes}")
    chapters: list[ChapterPlan] = []
    problems: list[Problem] = []
    for chapter in job.chapters:
        try:
            chapters.append(plan_chapter(chapter, max_chunk_bytes))
        except ManifestError as e:
            problems.extend(e.problems)
    if problems:
        raise ManifestError(problems)
    return Plan(job, tuple(chapters), max_chunk_bytes)
