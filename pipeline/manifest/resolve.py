"""Neutral chapters -> ``Job``: chapter ids, line ids, inheritance and the command line.

Speech fields are inherited, most specific first: line, chapter, the manifest's
``defaults``, the job file's ``defaults`` (a job file is the outer layer, like the command
line), and ``--voice``. ``--format`` and ``--sample-rate`` beat everything: one chapter file
needs one format and rate. A line's ``response_format`` and ``sample_rate`` are always set
(to the API's defaults when nothing says otherwise), so every later stage knows what audio
to expect; the other optional fields stay ``None`` (left out of the request) when unset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import regex

from pipeline.errors import ConfigError, ManifestError, Problem
from pipeline.manifest.model import (
    EMPTY_LAYER,
    MAX_ID_LENGTH,
    NO_OVERRIDES,
    Chapter,
    Job,
    Layer,
    Line,
    Overrides,
    SourceChapter,
    SourceLine,
)
from pipeline.manifest.readers import ReadContext, read_source, suffix_list
from pipeline.manifest.spoken import Speaking
from pipeline.manifest.text import display, problem
from pipeline.settings import DEFAULT_FIT, DEFAULT_MAX_SPEED, DEFAULT_PAUSE_MS
from pipeline.speech import DEFAULT_FORMAT, DEFAULT_SAMPLE_RATE, SpeechParams, check_field

# Chapter ids become file names (<id>.mp3, <id>.srt): ASCII only, so that no file system
# normalises or refuses them, and never a name the output directory already uses.
_CHAPTER_ID = regex.compile(r"[A-Za-z0-9._-]+")
_RESERVED_IDS = {"report": "its files would collide with report.json"} | {
    name: "it is a reserved device name on Windows"
    for name in (
        "con",
        "prn",
        "aux",
        "nul",
        *(f"com{i}" for i in range(1, 10)),
        *(f"lpt{i}" for i in range(1, 10)),
    )
}
# Said without the secret: a text that holds it was most likely read from the wrong file.
_TOKEN_FOUND = (
    "this {what} holds the API token: it would be sent and written into the outputs; "
    "remove it (a text_file such as /proc/self/environ names the wrong file)"
)


def load_job(
    path: Path,
    overrides: Overrides = NO_OVERRIDES,
    voice_languages: Mapping[str, str] | None = None,
    *,
    holds_token: Callable[[str], bool] | None = None,
) -> Job:
    """Load and validate a job file or manifest (any registered suffix: ``.yaml``, ``.csv``,
    ``.epub``, ``.txt``...).

    ``voice_languages`` (voice_id -> language_code, from a voice list) gives a line whose
    ``language`` nothing sets the language of its voice. Raises ``ConfigError`` for a bad
    override and ``ManifestError`` with every problem found in ``path`` and the files it names.
    ``holds_token(text)`` true for a line's text or a chapter's title is such a problem (the
    caller knows the secret; this module does not).
    """
    check_overrides(overrides)
    resolver = Resolver(overrides, voice_languages or {}, holds_token)
    job = resolver.load(Path(path))
    if resolver.problems:
        raise ManifestError(_in_file_order(resolver.problems))
    return job


def _in_file_order(problems: list[Problem]) -> list[Problem]:
    """Files in the order they were read, each one's problems by line (stable otherwise)."""
    files = {p.file: i for i, p in reversed(list(enumerate(problems)))}
    return sorted(problems, key=lambda p: (files[p.file], p.line or 0))


def check_overrides(overrides: Overrides) -> None:
    for option, name, value in (
        ("--voice", "voice_id", overrides.voice_id),
        ("--format", "response_format", overrides.response_format),
        ("--sample-rate", "sample_rate", overrides.sample_rate),
    ):
        if value is not None and (message := check_field(name, value)):
            raise ConfigError(f"{option}: {message}")


def chapter_id_problem(cid: str) -> str | None:
    if not cid:
        return "chapter id is empty"
    if cid.startswith("."):
        return f"chapter id {cid!r} must not start with '.': ids become file names"
    if not _CHAPTER_ID.fullmatch(cid):
        return (
            f"chapter id {cid!r} may only hold ASCII letters, digits, '.', '_' and '-' "
            "(ids become file names; put the display name in title)"
        )
    if len(cid) > MAX_ID_LENGTH:
        return f"chapter id is {len(cid)} characters long; at most {MAX_ID_LENGTH}"
    reason = _RESERVED_IDS.get(cid.lower())
    if reason:
        return f"chapter id {cid!r} is reserved: {reason}"
    return None


@dataclass
class _ChapterBuilder:
    id: str
    title: str | None
    file: str
    lineno: int | None
    registered: bool
    lines: list[Line] = field(default_factory=list)
    line_ids: dict[str, int | None] = field(default_factory=dict)
    positions: int = 0
    first: Line | None = None  # the line whose format and rate the chapter file takes
    no_voice: list[Line] = field(default_factory=list)


class Resolver:
    """Consumes a reader's neutral chapters in order; collects every problem on the way."""

    def __init__(
        self,
        overrides: Overrides,
        voice_languages: Mapping[str, str],
        holds_token: Callable[[str], bool] | None = None,
    ) -> None:
        self.overrides = overrides
        self.voice_languages = voice_languages
        self.holds_token = holds_token
        self.speaking = Speaking(None, None, voice_languages, self.problem)
        self.problems: list[Problem] = []
        self.chapters: dict[str, _ChapterBuilder] = {}
        self.folded: dict[str, _ChapterBuilder] = {}  # casefolded id: case-insensitive disks
        self.refused: list[_ChapterBuilder] = []
        self.refused_appends: set[str] = set()
        self.params: dict[tuple[Any, ...], SpeechParams] = {}
        voice = overrides.voice_id
        self.base = Layer({"voice_id": voice}) if voice else EMPTY_LAYER

    def problem(self, file: str, line: int | None, message: str) -> None:
        self.problems.append(problem(file, line, message))

    def load(self, path: Path) -> Job:
        shown = display(path)
        source = read_source(path, ReadContext(self.problem, shown, self.base))
        if source is None:
            self.problem(
                shown, None, f"unknown file type: a job file or manifest ends in {suffix_list()}"
            )
            job = Job(source=path, chapters=())
        else:
            self.speaking = Speaking(source.cast, source.lexicon, self.voice_languages,
                                     self.problem)
            self.consume(source.chapters)
            job = Job(path, (), source.output, source.run, source.book, source.skipped,
                      source.notes, source.quality)
        chapters = self.finish()
        if not chapters and not self.problems:
            self.problem(shown, None, "no chapters: the manifest has nothing to speak")
        return replace(job, chapters=chapters)

    def consume(self, chapters: Iterable[SourceChapter]) -> None:
        for source in chapters:
            b = self.open(source)
            if b is None:
                continue
            dialogue = self.speaking.check_dialogue(source)
            for line in source.lines:  # lazy: the reader reports line problems as it goes
                b.positions += 1
                lid = line.id if line.id is not None else str(b.positions)
                for piece in self.speaking.pieces(source, line, dialogue):
                    part_id = lid if piece.part is None else f"{lid}.{piece.part}"
                    self.add_line(b, part_id, line, piece.text, piece.fields, piece.last)

    def open(self, source: SourceChapter) -> _ChapterBuilder | None:
        """The builder for ``source``; None for more rows of an id already refused."""
        if source.id is None:
            b = _ChapterBuilder("?", source.title, source.file, source.line, registered=False)
            return self.detached(b)
        if source.append and source.id in self.refused_appends:
            return None
        b = self.chapter(source.id, source.title, source.file, source.line, source.append)
        if source.append and not b.registered:
            self.refused_appends.add(source.id)  # a CSV id is reported once, on its first row
            return None
        if b.title is None:
            b.title = source.title
        if self.holds_token is not None and source.title and self.holds_token(source.title):
            self.problem(source.file, source.line, _TOKEN_FOUND.format(what="title"))
        return b

    def finish(self) -> tuple[Chapter, ...]:
        for b in [*self.chapters.values(), *self.refused]:
            if b.no_voice:
                self._no_voice(b)
        return tuple(
            Chapter(b.id, b.title, tuple(b.lines), b.file, b.lineno)
            for b in self.chapters.values()
            if b.lines
        )

    def _no_voice(self, b: _ChapterBuilder) -> None:
        first = b.no_voice[0]
        more = len(b.no_voice) - 1
        also = f" (and {more} more of its lines)" if more else ""
        self.problem(
            first.file,
            first.lineno,
            f"no voice_id for line {first.id!r} of chapter {b.id!r}{also}: set it in "
            "defaults, the chapter or the line, or pass --voice",
        )

    def chapter(
        self, cid: str, title: str | None, file: str, line: int | None, append: bool
    ) -> _ChapterBuilder:
        """The chapter ``cid``; a new one unless ``append`` (CSV rows) and it exists.

        A refused id still gets a (detached) builder, so that its lines are checked too.
        """
        existing = self.chapters.get(cid)
        if existing is not None and append:
            return existing
        message = chapter_id_problem(cid)
        if message is None and existing is not None:
            message = (
                f"duplicate chapter id {cid!r} (first at {existing.file}:{existing.lineno}): "
                "ids must be unique, they become file names"
            )
        twin = self.folded.get(cid.casefold())
        if message is None and twin is not None:
            message = (
                f"chapter id {cid!r} differs from {twin.id!r} ({twin.file}:{twin.lineno}) only "
                "by case: their files would collide on case-insensitive disks"
            )
        if message is not None:
            self.problem(file, line, message)
            return self.detached(_ChapterBuilder(cid, title, file, line, registered=False))
        builder = _ChapterBuilder(cid, title, file, line, registered=True)
        self.chapters[cid] = builder
        self.folded[cid.casefold()] = builder
        return builder

    def detached(self, b: _ChapterBuilder) -> _ChapterBuilder:
        """A chapter whose id was refused: not in the job, but its lines are checked too."""
        self.refused.append(b)
        return b

    def add_line(
        self,
        b: _ChapterBuilder,
        lid: str,
        source: SourceLine,
        text: str,
        fields: Layer,
        last: bool = True,
    ) -> None:
        """Add line ``lid`` (``source``, or a part of it cut at a quote when not ``last``)."""
        if lid in b.line_ids:
            first = b.line_ids[lid]
            self.problem(
                source.file,
                source.line,
                f"duplicate line id {lid!r} in chapter {b.id!r} (first at line "
                f"{first}): line ids must be unique within their chapter",
            )
            return
        b.line_ids[lid] = source.line
        if self.holds_token is not None and self.holds_token(source.text):
            self.problem(source.file, source.line, _TOKEN_FOUND.format(what="text"))
            return
        values = fields.values
        params = self._params(values)
        # Parts of one paragraph follow each other without a pause: it is one paragraph.
        pause = values.get("pause_ms", DEFAULT_PAUSE_MS) if last else 0
        sent = self.speaking.text(text, values, source.file, source.line)
        line = Line(
            lid, sent, params, pause, source.file, source.line, *_dubbing(source, values)
        )
        if not params.voice_id and "voice_id" not in fields.invalid:
            b.no_voice.append(line)
        if fields.invalid.isdisjoint(("response_format", "sample_rate")):
            self._check_same_audio(b, line)
        b.lines.append(line)

    def _params(self, values: Mapping[str, Any]) -> SpeechParams:
        fmt = self.overrides.response_format or values.get("response_format") or DEFAULT_FORMAT
        rate = self.overrides.sample_rate or values.get("sample_rate") or DEFAULT_SAMPLE_RATE
        key = (
            values.get("voice_id") or "",
            values.get("emotion"),
            values.get("emotion_scale"),
            fmt,
            values.get("speed"),
            rate,
            values.get("loudness_rate"),
            values.get("context_texts"),
        )
        # Interned: a 100,000-row CSV holds a handful of distinct parameter sets, not 100,000.
        found = self.params.get(key)
        if found is None:
            found = self.params[key] = SpeechParams(*key)
        return found

    def _check_same_audio(self, b: _ChapterBuilder, line: Line) -> None:
        first = b.first
        if first is None:
            b.first = line
            return
        diffs = [
            f"{name} {mine}"
            for name, mine, theirs in (
                ("response_format", line.params.format, first.params.format),
                ("sample_rate", line.params.rate, first.params.rate),
            )
            if mine != theirs
        ]
        if diffs:
            self.problem(
                line.file,
                line.lineno,
                f"line {line.id!r} has {' and '.join(diffs)}, unlike line {first.id!r} "
                f"({first.params.format}, {first.params.rate} Hz) of chapter {b.id!r}: one "
                "chapter file needs one format and rate; set them on the chapter or in defaults",
            )


def _dubbing(source: SourceLine, values: Mapping[str, Any]) -> tuple[Any, ...]:
    """A line's cue, speaker and fit settings, in ``Line``'s field order after ``lineno``."""
    fit = values.get("fit", DEFAULT_FIT)
    max_speed = float(values.get("max_speed", DEFAULT_MAX_SPEED))
    return source.start, source.end, source.speaker, fit, max_speed
