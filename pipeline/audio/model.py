"""The data that goes in and out of chapter assembly, and the one audio error."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import AudioError as AudioError
from pipeline.formats import FILE_EXTENSIONS
from pipeline.formats import OUTPUT_FORMATS as OUTPUT_FORMATS
from pipeline.formats import SUBTITLE_FORMATS as SUBTITLE_FORMATS

TRUE_PEAK_CEILING_DBTP = -1.5
# Opus packets and granules always count 48 kHz samples, whatever rate was encoded.
OPUS_GRANULE_RATE = 48000


@dataclass(frozen=True)
class Part:
    """One chunk's audio file, exactly as the API returned it, and what follows it."""

    path: Path
    text: str
    line_id: str
    end_of_line: bool
    pause_after_ms: int = 0


@dataclass(frozen=True)
class BookInfo:
    """What players show about a book. Empty fields are left out of the tags."""

    title: str | None = None
    author: str | None = None
    narrator: str | None = None
    year: str | None = None
    description: str | None = None
    language: str | None = None  # a BCP 47 / ISO 639 code such as "en" or "zh"
    cover: Path | None = None  # JPEG or PNG


@dataclass(frozen=True)
class Mark:
    """A chapter mark: title and span in whole milliseconds."""

    title: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class ChapterSpec:
    """Everything needed to build one chapter file (and its subtitles)."""

    parts: tuple[Part, ...]
    response_format: str
    sample_rate: int
    out_path: Path
    output_format: str | None = None
    loudness_lufs: float | None = None
    title: str | None = None
    album: str | None = None
    track: int | None = None
    subtitles: tuple[str, ...] = ()
    book: BookInfo | None = None  # tags of an mp3 or m4a chapter file: author, cover...


@dataclass(frozen=True)
class Cue:
    """The span of one part's audio in its chapter file, in whole milliseconds."""

    start_ms: int
    end_ms: int
    text: str
    line_id: str

    @property
    def start_s(self) -> float:
        return self.start_ms / 1000

    @property
    def end_s(self) -> float:
        return self.end_ms / 1000


@dataclass(frozen=True)
class ChapterAudio:
    """A written chapter: its file, decoded duration, cues and subtitle files."""

    path: Path
    duration_s: float
    cues: tuple[Cue, ...]
    subtitle_paths: tuple[Path, ...] = field(default=())


def normalized_output_format(response_format: str, output_format: str | None) -> str:
    """The chapter file's format: ``output_format``, else the API's, with opus spelt one way."""
    fmt = output_format or response_format
    return FILE_EXTENSIONS.get(fmt, fmt)


def is_lossless_join(spec: ChapterSpec) -> bool:
    """True when the parts can be joined as they are, without decoding."""
    same = normalized_output_format(spec.response_format, spec.output_format) == (
        normalized_output_format(spec.response_format, None)
    )
    return same and spec.loudness_lufs is None
