"""The manifest's data model: what readers produce and what the rest of the pipeline reads.

Two levels. A reader (one per source format) turns a file into *neutral* chapters,
``SourceChapter`` and ``SourceLine``: text with its file and line, an optional id, speaker
and cue times, and the speech fields it set. The resolver then applies inheritance
(defaults -> chapter -> line) and the command line, and builds the resolved ``Job`` of
``Chapter`` and ``Line`` whose ``SpeechParams`` every later stage uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.books.model import Cover, Skipped
from pipeline.settings import DEFAULT_FIT, DEFAULT_MAX_SPEED
from pipeline.speech import DEFAULT_FORMAT, DEFAULT_SAMPLE_RATE, SPEECH_FIELDS, SpeechParams

if TYPE_CHECKING:  # pipeline.quality loads numpy and PyAV: not for reading a manifest
    from pipeline.books.lexicon import Lexicon
    from pipeline.quality.config import QualityConfig

SPEECH_KEYS = tuple(f for f in SPEECH_FIELDS if f != "input")  # the text has its own keys
FIT_KEYS = ("fit", "max_speed")  # dubbing: how a line is brought into its cue's slot
LAYER_KEYS = (*SPEECH_KEYS, "pause_ms", *FIT_KEYS)
# What decides the text sent (not the voice): inherited like speech fields, line > chapter > job.
TEXT_KEYS = ("normalize", "language")
# How a book source (.epub, .txt) named by a job file is read.
BOOK_SOURCE_KEYS = ("include", "exclude", "heading", "preface")
TOP_KEYS = (
    "manifest", "defaults", "chapters", "output", "run", "quality", "book", "lexicon", "cast",
    "dialogue", *TEXT_KEYS, *BOOK_SOURCE_KEYS,
)
JOB_ONLY_KEYS = ("manifest", "output", "run", "quality", "book", *BOOK_SOURCE_KEYS)
CHAPTER_KEYS = ("id", "title", "text", "text_file", "lines", "dialogue", *LAYER_KEYS, *TEXT_KEYS)
LINE_KEYS = ("text", "id", "speaker", *LAYER_KEYS, *TEXT_KEYS)
TEXT_SOURCES = ("text", "text_file", "lines")
OUTPUT_KEYS = ("dir", "format", "book", "subtitles", "loudness_lufs", "clips", "fit_strict")
RUN_KEYS = ("backend", "base_url", "qps", "concurrency", "retries", "max_chunk_bytes")
BOOK_KEYS = ("title", "author", "narrator", "year", "description", "language", "cover")
CSV_COLUMNS = (
    "chapter", "text", "id", "title", "speaker", *LAYER_KEYS, *TEXT_KEYS, "start", "end"
)
CSV_REQUIRED = ("chapter", "text")

BACKENDS = ("coze", "local")
MAX_PAUSE_MS = 60_000
LOUDNESS_LUFS_RANGE = (-70.0, -5.0)
MAX_ID_LENGTH = 100
FIT_MODES = ("none", "speed", "stretch")
MAX_SPEED_RANGE = (1.0, 3.0)  # 3.0 is the API's top speed


# ---------------------------------------------------------------- resolved model


@dataclass(frozen=True, slots=True)
class Line:
    """One line to speak: at most a paragraph, cut into chunks later."""

    id: str
    text: str
    params: SpeechParams
    pause_ms: int
    file: str
    lineno: int | None
    # Dubbing: the cue's times in seconds (timed sources), who speaks, how to fit the slot.
    start: float | None = None
    end: float | None = None
    speaker: str | None = None
    fit: str = DEFAULT_FIT
    max_speed: float = DEFAULT_MAX_SPEED


@dataclass(frozen=True, slots=True)
class Chapter:
    """One output file: its lines share one response_format and sample_rate."""

    id: str
    title: str | None
    lines: tuple[Line, ...]
    file: str
    lineno: int | None

    @property
    def response_format(self) -> str:
        return self.lines[0].params.format if self.lines else DEFAULT_FORMAT

    @property
    def sample_rate(self) -> int:
        return self.lines[0].params.rate if self.lines else DEFAULT_SAMPLE_RATE


@dataclass(frozen=True)
class OutputSettings:
    """The job file's ``output`` section; ``dir`` is resolved against the job file's folder."""

    dir: Path | None = None
    format: str | None = None
    book: str | None = None  # a file name inside the output directory
    subtitles: tuple[str, ...] = ()
    loudness_lufs: float | None = None
    clips: bool = False  # every line as its own file too (dubbing)
    fit_strict: bool = False  # a line that still overflows its cue fails its chapter


@dataclass(frozen=True)
class RunSettings:
    """The job file's ``run`` section; None = not set (the command line or its default decides)."""

    backend: str | None = None
    base_url: str | None = None
    qps: float | None = None
    concurrency: int | None = None
    retries: int | None = None
    max_chunk_bytes: int | None = None


@dataclass(frozen=True)
class Overrides:
    """Command-line values: ``voice_id`` is the last fallback, the other two beat every file."""

    voice_id: str | None = None
    response_format: str | None = None
    sample_rate: int | None = None


@dataclass(frozen=True)
class BookMeta:
    """What the audiobook says about itself (its tags): the job's ``book:`` section over what
    an EPUB source's metadata says. ``cover`` holds the checked image (JPEG or PNG)."""

    title: str | None = None
    author: str | None = None
    narrator: str | None = None
    year: int | None = None
    description: str | None = None
    language: str | None = None
    cover: Cover | None = None

    def over(self, base: BookMeta | None) -> BookMeta:
        """These values, each unset one taken from ``base``."""
        if base is None:
            return self
        names = ("title", "author", "narrator", "year", "description", "language", "cover")
        mine = {n: getattr(self, n) for n in names}
        return BookMeta(**{n: v if v is not None else getattr(base, n) for n, v in mine.items()})


@dataclass(frozen=True)
class BookOptions:
    """How a book source is read: chapters kept (``include``/``exclude``: title globs,
    ``re:REGEX`` or 1-based positions), a ``heading`` regex for .txt, and the ``preface``."""

    include: tuple[str | int, ...] = ()
    exclude: tuple[str | int, ...] = ()
    heading: str | None = None
    preface: str = "chapter"


@dataclass(frozen=True)
class Job:
    """A resolved job. ``book`` is the audiobook's metadata (None when nothing sets any);
    ``skipped`` is the source text that will not be spoken, each with its reason; ``notes``
    are a book parser's decisions worth showing (``plan``)."""

    source: Path
    chapters: tuple[Chapter, ...]
    output: OutputSettings = field(default_factory=OutputSettings)
    run: RunSettings = field(default_factory=RunSettings)
    book: BookMeta | None = None
    skipped: tuple[Skipped, ...] = ()
    notes: tuple[str, ...] = ()
    quality: QualityConfig | None = None  # the job's quality:; None = not set (the gate is on)


NO_OVERRIDES = Overrides()


# ---------------------------------------------------------------- neutral model (readers)


@dataclass(frozen=True)
class Layer:
    """Speech fields set at one level; ``invalid`` were set but refused (already reported).

    A refused field is remembered so that, say, a bad ``voice_id`` is not reported a second
    time as a missing one.
    """

    values: Mapping[str, Any]
    invalid: frozenset[str] = frozenset()

    def then(self, inner: Layer) -> Layer:
        """This layer with a more specific one on top (its values win)."""
        if not inner.values and not inner.invalid:
            return self
        if not self.values and not self.invalid:
            return inner
        return Layer({**self.values, **inner.values}, self.invalid | inner.invalid)


EMPTY_LAYER = Layer({})


@dataclass(frozen=True, slots=True)
class SourceLine:
    """A line as a reader found it, before inheritance.

    ``fields`` holds the speech fields (and ``pause_ms``) the source set for this line alone;
    ``start``/``end`` are cue times in seconds for timed sources (subtitles), ``speaker`` a
    name a cast can map to a voice.
    """

    text: str
    file: str
    line: int | None
    id: str | None = None
    speaker: str | None = None
    start: float | None = None
    end: float | None = None
    fields: Layer = EMPTY_LAYER


@dataclass(frozen=True)
class SourceChapter:
    """A chapter as a reader found it: ``fields`` already hold every outer layer.

    ``id`` None means the reader could not read one (and said so): the lines are still
    checked. ``append`` joins the lines to an earlier chapter of the same id (one CSV row
    each). ``lines`` may be lazy: a reader's line problems are then reported in file order.
    """

    id: str | None
    title: str | None
    file: str
    line: int | None
    lines: Iterable[SourceLine]
    fields: Layer = EMPTY_LAYER
    append: bool = False
    dialogue: str | None = None  # the cast speaker of quoted speech in this chapter


@dataclass(frozen=True)
class Source:
    """What a reader returns: its chapters (lazily) and, for a job file, its settings.

    ``cast`` maps a speaker to the fields its lines take; ``lexicon`` rewrites what is sent;
    ``book``, ``skipped`` and ``notes`` come from a book source (see ``Job``).
    """

    chapters: Iterable[SourceChapter]
    output: OutputSettings = field(default_factory=OutputSettings)
    run: RunSettings = field(default_factory=RunSettings)
    cast: Mapping[str, Layer] | None = None
    lexicon: Lexicon | None = None
    book: BookMeta | None = None
    skipped: tuple[Skipped, ...] = ()
    notes: tuple[str, ...] = ()
    quality: QualityConfig | None = None
