"""Manifests and job files -> ``Job``: chapters, lines, and each line's resolved speech parameters.

Three inputs (see ``interface.md``): a YAML manifest, a CSV manifest, and a job file (a YAML
manifest that may also hold ``output`` and ``run`` settings, or point at another manifest with
``manifest:``). Validation finds every problem in one pass and raises one ``ManifestError``
whose problems read ``FILE:LINE: message``: YAML lines come from the parser's node marks, CSV
rows are the physical line where a record starts (the spreadsheet row for files without
multi-line cells), text file problems name the byte offset.

Speech fields are inherited, most specific first: line, chapter, the manifest's ``defaults``,
the job file's ``defaults`` (a job file is the outer layer, like the command line), and
``--voice``. ``--format`` and ``--sample-rate`` beat everything: one chapter file needs one
format and rate. A line's ``response_format`` and ``sample_rate`` are always set (to the API's
defaults when nothing says otherwise), so every later stage knows what audio to expect; the
other optional fields stay ``None`` (left out of the request) when unset.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import regex
import yaml

from pipeline.errors import ConfigError, ManifestError, Problem
from pipeline.speech import (
    DEFAULT_FORMAT,
    DEFAULT_SAMPLE_RATE,
    MAX_INPUT_BYTES,
    SPEECH_FIELDS,
    SpeechParams,
    check_field,
)

SPEECH_KEYS = tuple(f for f in SPEECH_FIELDS if f != "input")  # the text has its own keys
LAYER_KEYS = (*SPEECH_KEYS, "pause_ms")
TOP_KEYS = ("manifest", "defaults", "chapters", "output", "run")
JOB_ONLY_KEYS = ("manifest", "output", "run")
CHAPTER_KEYS = ("id", "title", "text", "text_file", "lines", *LAYER_KEYS)
LINE_KEYS = ("text", "id", *LAYER_KEYS)
TEXT_SOURCES = ("text", "text_file", "lines")
OUTPUT_KEYS = ("dir", "format", "book", "subtitles", "loudness_lufs")
RUN_KEYS = ("backend", "base_url", "qps", "concurrency", "retries", "max_chunk_bytes")
CSV_COLUMNS = ("chapter", "text", "id", "title", *LAYER_KEYS)
CSV_REQUIRED = ("chapter", "text")

OUTPUT_FORMATS = ("mp3", "opus", "flac", "m4a", "wav")
SUBTITLE_FORMATS = ("srt", "vtt")
BACKENDS = ("coze", "local")
DEFAULT_PAUSE_MS = 300
MAX_PAUSE_MS = 60_000
LOUDNESS_LUFS_RANGE = (-70.0, -5.0)
MAX_ID_LENGTH = 100

YAML_SUFFIXES = (".yaml", ".yml")
CSV_SUFFIXES = (".csv",)

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
# Han, kana, Hangul, Bopomofo, CJK punctuation and full-width forms: no space is written
# between them, so a line break next to one of them is dropped rather than made a space.
_CJK = regex.compile(
    r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\p{Bopomofo}"
    r"\u3000-\u303f\u3040-\u30ff\uff00-\uffef]"
)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


# ---------------------------------------------------------------- public data model


@dataclass(frozen=True, slots=True)
class Line:
    """One line to speak: at most a paragraph, cut into chunks later."""

    id: str
    text: str
    params: SpeechParams
    pause_ms: int
    file: str
    lineno: int | None


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
class Job:
    source: Path
    chapters: tuple[Chapter, ...]
    output: OutputSettings = field(default_factory=OutputSettings)
    run: RunSettings = field(default_factory=RunSettings)


NO_OVERRIDES = Overrides()


def load_job(path: Path, overrides: Overrides = NO_OVERRIDES) -> Job:
    """Load and validate a job file or manifest (``.yaml``, ``.yml``, ``.csv``).

    Raises ``ConfigError`` for a bad override and ``ManifestError`` with every problem found
    in ``path`` and the files it names.
    """
    _check_overrides(overrides)
    loader = _Loader(overrides)
    job = loader.load(Path(path))
    if loader.problems:
        raise ManifestError(_in_file_order(loader.problems))
    return job


def _in_file_order(problems: list[Problem]) -> list[Problem]:
    """Files in the order they were read, each one's problems by line (stable otherwise)."""
    files = {p.file: i for i, p in reversed(list(enumerate(problems)))}
    return sorted(problems, key=lambda p: (files[p.file], p.line or 0))


def split_paragraphs(text: str) -> list[str]:
    """The lines of a ``text`` or ``text_file``: one per paragraph.

    Paragraphs are separated by blank lines; a text with no blank line between two non-blank
    lines has one paragraph per non-empty line. Inside a paragraph each line is stripped and
    a line break becomes a space, except next to a CJK character (Han, kana, Hangul, CJK
    punctuation, full-width forms), where it becomes nothing.
    """
    return [p for _, p in _paragraphs(text)]


# ---------------------------------------------------------------- text helpers


def _physical_lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _join_lines(lines: Sequence[str]) -> str:
    parts: list[str] = []
    for raw in lines:
        piece = raw.strip()
        if not piece:
            continue
        if parts and not (_CJK.match(parts[-1][-1]) or _CJK.match(piece[0])):
            parts.append(" ")
        parts.append(piece)
    return "".join(parts)


def _one_line(text: str) -> str:
    """A line's text with its line breaks joined as inside a paragraph."""
    return _join_lines(_physical_lines(text))


def _paragraphs(text: str) -> list[tuple[int, str]]:
    """(0-based line offset of the paragraph's first line, paragraph text), in order."""
    lines = _physical_lines(text)
    filled = [i for i, line in enumerate(lines) if line.strip()]
    if not filled:
        return []
    if filled[-1] - filled[0] + 1 == len(filled):  # no blank line between two non-blank ones
        return [(i, lines[i].strip()) for i in filled]
    out: list[tuple[int, str]] = []
    start = filled[0]
    for i in range(filled[0], filled[-1] + 2):
        if i <= filled[-1] and lines[i].strip():
            continue
        if i > start:
            out.append((start, _join_lines(lines[start:i])))
        start = i + 1
    return out


def _closest(word: str, choices: Sequence[str]) -> str | None:
    found = difflib.get_close_matches(word, choices, n=1)
    return found[0] if found else None


def _unknown(word: str, what: str, choices: Sequence[str]) -> str:
    close = _closest(word, choices)
    if close is not None:
        return f"{word}: unknown {what}; did you mean {close}?"
    return f"{word}: unknown {what}; allowed: {', '.join(choices)}"


def _not_utf8(data: bytes, error: UnicodeDecodeError, base: int) -> str:
    offset = base + error.start
    bad = data[error.start : error.start + 1].hex()
    return f"not UTF-8: byte 0x{bad} at byte offset {offset}"


def _decode_utf8(data: bytes) -> tuple[str | None, int, str]:
    """(text, 0, "") or (None, 1-based line of the first bad byte, message)."""
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[skip:].decode("utf-8"), 0, ""
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, skip + e.start) + 1
        return None, line, _not_utf8(data[skip:], e, skip)


def _read_bytes(path: Path) -> bytes | str:
    """The file's bytes, or why it cannot be read."""
    if "\x00" in str(path):
        return "a file name cannot hold a NUL character"  # open() would raise ValueError
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return "no such file"
    except IsADirectoryError:
        return "is a directory, not a file"
    except OSError as e:
        return f"cannot read it: {e.strerror or e}"


def _display(path: Path) -> str:
    return os.path.normpath(str(path))


def _is_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _is_whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_value(name: str, value: object) -> str | None:
    """The one check for a speech field or pause_ms, whichever file it comes from."""
    if name != "pause_ms":
        return check_field(name, value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_PAUSE_MS:
        return None
    return f"pause_ms must be a whole number of milliseconds from 0 to {MAX_PAUSE_MS}"


def _normalise(name: str, value: Any) -> Any:
    if name in ("speed", "emotion_scale") and _is_number(value):
        return float(value)
    if name in ("emotion", "context_texts") and value == "":
        return None
    return value


def _check_overrides(overrides: Overrides) -> None:
    for option, name, value in (
        ("--voice", "voice_id", overrides.voice_id),
        ("--format", "response_format", overrides.response_format),
        ("--sample-rate", "sample_rate", overrides.sample_rate),
    ):
        if value is not None and (message := check_field(name, value)):
            raise ConfigError(f"{option}: {message}")


def _chapter_id_problem(cid: str) -> str | None:
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


# ---------------------------------------------------------------- YAML tree with line numbers


@dataclass(slots=True)
class _Node:
    """A YAML value with its 1-based line; mappings hold ``dict[str, _Node]``."""

    value: Any
    line: int
    key_line: int
    raw: str | None = None  # a plain scalar's source text: `id: 01` is "01", not 1
    style: str | None = None

    @property
    def is_map(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_list(self) -> bool:
        return isinstance(self.value, list)

    def kind(self) -> str:
        if self.is_map:
            return "a mapping"
        if self.is_list:
            return "a list"
        if self.value is None:
            return "empty"
        return f"{type(self.value).__name__} {self.value!r}"

    def text(self) -> str | None:
        """The scalar as text; numbers and booleans as written; None for null or a collection."""
        if isinstance(self.value, str):
            return self.value
        if self.value is None or self.is_map or self.is_list:
            return None
        return self.raw if self.raw is not None else str(self.value)


class _YamlTree:
    """Turns composed YAML nodes into ``_Node`` trees, reporting duplicate keys on the way."""

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems
        self.constructor = yaml.constructor.SafeConstructor()
        self.seen: dict[int, _Node] = {}  # aliases share nodes: convert each once

    def problem(self, line: int | None, message: str) -> None:
        self.problems.append(_problem(self.file, line, message))

    def convert(self, node: yaml.Node, key_line: int) -> _Node:
        done = self.seen.get(id(node))
        if done is not None:
            return done
        line = node.start_mark.line + 1
        out = _Node(None, line, key_line)
        self.seen[id(node)] = out
        if isinstance(node, yaml.MappingNode):
            out.value = self._mapping(node)
        elif isinstance(node, yaml.SequenceNode):
            out.value = [self.convert(item, item.start_mark.line + 1) for item in node.value]
        else:
            assert isinstance(node, yaml.ScalarNode)
            out.value = self._scalar(node, line)
            out.style = node.style
            if node.style is None and not isinstance(out.value, str):
                out.raw = node.value
        return out

    def _scalar(self, node: yaml.ScalarNode, line: int) -> Any:
        try:
            return self.constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as e:
            if node.style is None and node.tag == _TIMESTAMP_TAG:
                return node.value  # `id: 2024-13-45` only looks like a date: it is a name

            problem = getattr(e, "problem", None) or str(e)
            self.problem(line, f"cannot read the value {node.value!r}: {problem}")
            return node.value

    def _mapping(self, node: yaml.MappingNode) -> dict[str, _Node]:
        own: dict[str, _Node] = {}
        merged: dict[str, _Node] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE_TAG:
                self._merge(merged, self.convert(value_node, key_line))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(key_line, "a key must be a plain name, not a list or mapping")
                continue
            key = str(key_node.value)
            if key in own:
                self.problem(
                    key_line,
                    f"{key}: duplicate key (first at line {own[key].key_line}); "
                    "YAML would keep only the last one: remove one of them",
                )
                continue
            own[key] = self.convert(value_node, key_line)
        return {**merged, **own} if merged else own

    def _merge(self, into: dict[str, _Node], source: _Node) -> None:
        # `<<: *base` or `<<: [*a, *b]`; the earlier source wins, the mapping's own keys win.
        sources = source.value if source.is_list else [source]
        for item in sources:
            if not isinstance(item, _Node) or not item.is_map:
                self.problem(source.key_line, "<<: can only merge mappings (`<<: *anchor`)")
                return
            for key, value in item.value.items():
                into.setdefault(key, value)


def _problem(file: str, line: int | None, message: str) -> Problem:
    """A problem whose text is one printable line, whatever the input quoted into it.

    Messages quote keys, values and file names from the input: a line break, a control
    character or a terminal escape in them would split the FILE:LINE: report or act on the
    user's terminal, so every non-printable character is shown as its escape.
    """
    return Problem(_printable(file), line, _printable(message))


def _printable(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _yaml_error_problem(file: str, text: str, error: yaml.YAMLError) -> Problem:
    if isinstance(error, yaml.reader.ReaderError):
        line = text.count("\n", 0, error.position) + 1
        char = error.character if isinstance(error.character, int) else ord(error.character)
        return _problem(
            file,
            line,
            f"YAML syntax error: character U+{char:04X} is not allowed in YAML; "
            "remove it or write it as an escape in a double-quoted string",
        )
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    where: int | None = mark.line + 1 if mark is not None else None
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    context_mark = getattr(error, "context_mark", None)
    detail = f"{problem}"
    if context and context_mark is not None and context_mark is not mark:
        detail += f" ({context} at line {context_mark.line + 1})"
    return _problem(file, where, f"YAML syntax error: {detail}; check the indentation and quotes")


# ---------------------------------------------------------------- resolution


@dataclass(frozen=True)
class _Layer:
    """Fields set at one level (defaults, chapter, line); ``invalid`` were set but refused."""

    values: Mapping[str, Any]
    invalid: frozenset[str] = frozenset()


_EMPTY_LAYER = _Layer({})


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


class _Loader:
    def __init__(self, overrides: Overrides) -> None:
        self.overrides = overrides
        self.problems: list[Problem] = []
        self.chapters: dict[str, _ChapterBuilder] = {}
        self.folded: dict[str, _ChapterBuilder] = {}  # casefolded id: case-insensitive disks
        self.refused: list[_ChapterBuilder] = []
        self.params: dict[tuple[Any, ...], SpeechParams] = {}
        self.base = _Layer({"voice_id": overrides.voice_id}) if overrides.voice_id else _EMPTY_LAYER

    def problem(self, file: str, line: int | None, message: str) -> None:
        self.problems.append(_problem(file, line, message))

    # ------------------------------------------------------------ entry point

    def load(self, path: Path) -> Job:
        display = _display(path)
        output, run = OutputSettings(), RunSettings()
        suffix = path.suffix.lower()
        if suffix in CSV_SUFFIXES:
            self.load_csv(path, display, [self.base])
        elif suffix in YAML_SUFFIXES:
            output, run = self.load_yaml_job(path, display)
        else:
            self.problem(
                display,
                None,
                "unknown file type: a job file or manifest ends in .yaml, .yml or .csv",
            )
        chapters = self.finish()
        if not chapters and not self.problems:
            self.problem(display, None, "no chapters: the manifest has nothing to speak")
        return Job(source=path, chapters=chapters, output=output, run=run)

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

    # ------------------------------------------------------------ chapters and lines

    def chapter(
        self, cid: str, title: str | None, file: str, line: int | None, *, append: bool
    ) -> _ChapterBuilder:
        """The chapter ``cid``; a new one unless ``append`` (CSV rows) and it exists.

        A refused id still gets a (detached) builder, so that its lines are checked too.
        """
        existing = self.chapters.get(cid)
        if existing is not None and append:
            return existing
        message = _chapter_id_problem(cid)
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
        text: str,
        line_id: str | None,
        layers: Sequence[_Layer],
        file: str,
        lineno: int | None,
    ) -> None:
        b.positions += 1
        lid = line_id if line_id is not None else str(b.positions)
        if lid in b.line_ids:
            first = b.line_ids[lid]
            self.problem(
                file,
                lineno,
                f"duplicate line id {lid!r} in chapter {b.id!r} (first at line "
                f"{first}): line ids must be unique within their chapter",
            )
            return
        b.line_ids[lid] = lineno
        values: dict[str, Any] = {}
        invalid: set[str] = set()
        for layer in layers:  # least specific first: later layers overwrite
            values.update(layer.values)
            invalid.update(layer.invalid)
        params = self._params(values)
        pause = values.get("pause_ms", DEFAULT_PAUSE_MS)
        line = Line(lid, text, params, pause, file, lineno)
        if not params.voice_id and "voice_id" not in invalid:
            b.no_voice.append(line)
        if invalid.isdisjoint(("response_format", "sample_rate")):
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

    # ------------------------------------------------------------ YAML

    def parse_yaml(self, path: Path, display: str) -> _Node | None:
        data = _read_bytes(path)
        if isinstance(data, str):
            self.problem(display, None, data)
            return None
        text, bad_line, message = _decode_utf8(data)
        if text is None:
            self.problem(display, bad_line, f"{message}; save the file as UTF-8")
            return None
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as e:
            self.problems.append(_yaml_error_problem(display, text, e))
            return None
        except RecursionError:
            self.problem(display, None, "YAML nested too deeply to read")
            return None
        if root is None:
            self.problem(display, None, "the file is empty: a manifest needs a 'chapters' list")
            return None
        try:
            tree = _YamlTree(display, self.problems).convert(root, 1)
        except RecursionError:
            self.problem(display, None, "YAML nested too deeply to read")
            return None
        if not tree.is_map:
            self.problem(
                display,
                tree.line,
                f"the top level must be a mapping with 'chapters' (or "
                f"'manifest'), not {tree.kind()}",
            )
            return None
        return tree

    def load_yaml_job(self, path: Path, display: str) -> tuple[OutputSettings, RunSettings]:
        root = self.parse_yaml(path, display)
        if root is None:
            return OutputSettings(), RunSettings()
        folder = path.parent
        self.check_keys(root, display, TOP_KEYS, "key")
        output = self.output_settings(root.value.get("output"), display, folder)
        run = self.run_settings(root.value.get("run"), display)
        job_defaults = self.defaults(root.value.get("defaults"), display)
        target = root.value.get("manifest")
        if target is None:
            self.yaml_chapters(root, display, folder, [self.base, job_defaults])
        elif "chapters" in root.value:
            self.problem(
                display,
                root.value["chapters"].key_line,
                "chapters: a job file with "
                "'manifest' takes its chapters from that file; remove one of the two",
            )
        else:
            self.indirect_manifest(target, display, folder, [self.base, job_defaults])
        return output, run

    def indirect_manifest(self, node: _Node, file: str, folder: Path, layers: list[_Layer]) -> None:
        name = node.text()
        if not isinstance(node.value, str) or not name or not name.strip():
            self.problem(file, node.line, "manifest must be the path of a .yaml or .csv file")
            return
        path = folder / name
        display = _display(path)
        suffix = path.suffix.lower()
        if suffix not in CSV_SUFFIXES + YAML_SUFFIXES:
            self.problem(file, node.line, f"manifest {name}: must end in .yaml, .yml or .csv")
        elif not path.is_file():
            what = "is a directory" if path.is_dir() else "no such file"
            self.problem(file, node.line, f"manifest {name}: {what} ({display})")
        elif suffix in CSV_SUFFIXES:
            self.load_csv(path, display, layers)
        else:
            root = self.parse_yaml(path, display)
            if root is None:
                return
            for key in JOB_ONLY_KEYS:
                if key in root.value:
                    self.problem(
                        display,
                        root.value[key].key_line,
                        f"{key}: belongs in the job file "
                        f"({file}), not in the manifest it names (one level of indirection)",
                    )
            allowed = [k for k in TOP_KEYS if k not in JOB_ONLY_KEYS]
            self.check_keys(root, display, TOP_KEYS, "key", report=allowed)
            own = self.defaults(root.value.get("defaults"), display)
            self.yaml_chapters(root, display, path.parent, [*layers, own])

    def check_keys(
        self,
        node: _Node,
        file: str,
        allowed: Sequence[str],
        what: str,
        report: Sequence[str] | None = None,
    ) -> None:
        """Report keys not in ``allowed``; suggestions come from ``report`` (default: allowed)."""
        for key, child in node.value.items():
            if key not in allowed:
                self.problem(file, child.key_line, _unknown(key, what, report or allowed))

    def layer(self, node: _Node, file: str) -> _Layer:
        values: dict[str, Any] = {}
        invalid: set[str] = set()
        for name in LAYER_KEYS:
            child = node.value.get(name)
            if child is None:
                continue
            value = child.value
            if name in ("voice_id", "context_texts") and not isinstance(value, str):
                value = child.text()  # voice_id: 7426720361733144585 is text to Coze
            if isinstance(child.value, dict | list):
                message: str | None = f"{name} must be a single value, not {child.kind()}"
            elif value is None:
                continue  # `emotion:` with nothing after it: not set
            else:
                message = _check_value(name, value)
            if message is not None:
                self.problem(file, child.line, message)
                invalid.add(name)
                continue
            normal = _normalise(name, value)
            if normal is not None:
                values[name] = normal
        return _Layer(values, frozenset(invalid)) if values or invalid else _EMPTY_LAYER

    def defaults(self, node: _Node | None, file: str) -> _Layer:
        if node is None or node.value is None:
            return _EMPTY_LAYER
        if not node.is_map:
            self.problem(
                file, node.line, f"defaults must be a mapping of field: value, not {node.kind()}"
            )
            return _EMPTY_LAYER
        self.check_keys(node, file, LAYER_KEYS, "key")
        return self.layer(node, file)

    def yaml_chapters(self, root: _Node, file: str, folder: Path, layers: list[_Layer]) -> None:
        node = root.value.get("chapters")
        if node is None:
            self.problem(
                file,
                None,
                "no chapters: add a 'chapters' list, or point 'manifest' at a manifest file",
            )
            return
        if not node.is_list:
            self.problem(
                file,
                node.line,
                f"chapters must be a list (each item starting with '- id:'), not {node.kind()}",
            )
            return
        if not node.value:
            self.problem(file, node.line, "chapters is empty: a manifest needs one chapter or more")
            return
        for item in node.value:
            self.yaml_chapter(item, file, folder, layers)

    def yaml_chapter(self, node: _Node, file: str, folder: Path, layers: list[_Layer]) -> None:
        if not node.is_map:
            self.problem(
                file,
                node.line,
                f"a chapter must be a mapping starting with 'id:', not {node.kind()}",
            )
            return
        m = node.value
        self.check_keys(node, file, CHAPTER_KEYS, "key")
        cid = self.chapter_id(node, file)
        title = self.optional_text(m.get("title"), "title", file)
        if cid is None:
            b = self.detached(_ChapterBuilder("?", title, file, node.line, registered=False))
        else:
            b = self.chapter(cid, title, file, node.line, append=False)
        chapter_layers = [*layers, self.layer(node, file)]
        sources = [k for k in TEXT_SOURCES if k in m]
        if not sources:
            self.problem(
                file,
                node.line,
                f"chapter {b.id!r} has no text: give one of text, text_file or lines",
            )
            return
        if len(sources) > 1:
            self.problem(
                file,
                m[sources[1]].key_line,
                f"chapter {b.id!r} has both {sources[0]} and "
                f"{sources[1]}: give only one of text, text_file or lines",
            )
            return
        source = sources[0]
        if source == "text":
            self.text_chapter(b, m["text"], file, chapter_layers)
        elif source == "text_file":
            self.text_file_chapter(b, m["text_file"], file, folder, chapter_layers)
        else:
            self.lines_chapter(b, m["lines"], file, chapter_layers)

    def chapter_id(self, node: _Node, file: str) -> str | None:
        id_node: _Node | None = node.value.get("id")
        if id_node is None:
            self.problem(
                file, node.line, "chapter has no id: add 'id: ch01' (ids become file names)"
            )
            return None
        cid = id_node.text()
        if cid is None:
            self.problem(file, id_node.line, f"chapter id must be a name, not {id_node.kind()}")
            return None
        return cid

    def optional_text(self, node: _Node | None, name: str, file: str) -> str | None:
        if node is None or node.value is None:
            return None
        text = node.text()
        if text is None:
            self.problem(file, node.line, f"{name} must be text, not {node.kind()}")
            return None
        return text.strip() or None

    def required_text(self, node: _Node, what: str, file: str) -> str | None:
        text = node.text()
        if text is None and node.value is not None:
            self.problem(file, node.line, f"{what} must be text, not {node.kind()}")
            return None
        if text is None or not text.strip():
            self.problem(file, node.line, f"{what} is empty")
            return None
        return text

    def text_chapter(
        self, b: _ChapterBuilder, node: _Node, file: str, layers: list[_Layer]
    ) -> None:
        text = self.required_text(node, "text", file)
        if text is None:
            return
        # A literal block (`text: |`) starts on the next line, so its lines map to the file's.
        first = node.line + 1 if node.style == "|" else None
        for offset, paragraph in _paragraphs(text):
            lineno = first + offset if first is not None else node.line
            self.add_line(b, paragraph, None, layers, file, lineno)

    def text_file_chapter(
        self, b: _ChapterBuilder, node: _Node, file: str, folder: Path, layers: list[_Layer]
    ) -> None:
        name = self.required_text(node, "text_file", file)
        if name is None:
            return
        path = folder / name
        display = _display(path)
        data = _read_bytes(path)
        if isinstance(data, str):
            self.problem(file, node.line, f"text_file {name}: {data} ({display})")
            return
        text, bad_line, message = _decode_utf8(data)
        if text is None:
            self.problem(
                file,
                node.line,
                f"text_file {name} is {message} (its line {bad_line}); save it as UTF-8",
            )
            return
        paragraphs = _paragraphs(text)
        if not paragraphs:
            self.problem(file, node.line, f"text_file {name} has no text ({display})")
        for offset, paragraph in paragraphs:
            self.add_line(b, paragraph, None, layers, display, offset + 1)

    def lines_chapter(
        self, b: _ChapterBuilder, node: _Node, file: str, layers: list[_Layer]
    ) -> None:
        if not node.is_list:
            self.problem(
                file,
                node.line,
                f"lines must be a list (each item starting with '- text:'), not {node.kind()}",
            )
            return
        if not node.value:
            self.problem(file, node.line, f"lines of chapter {b.id!r} is empty")
            return
        for item in node.value:
            self.yaml_line(b, item, file, layers)

    def yaml_line(self, b: _ChapterBuilder, node: _Node, file: str, layers: list[_Layer]) -> None:
        if isinstance(node.value, str):  # `- "Hello"`: a line with nothing but its text
            text_node, lid, layer = node, None, _EMPTY_LAYER
        elif node.is_map:
            self.check_keys(node, file, LINE_KEYS, "key")
            text_node = node.value.get("text")
            lid = self.line_id(node, file)
            layer = self.layer(node, file)
            if text_node is None:
                self.problem(file, node.line, "line has no text: add 'text: ...'")
                return
        else:
            self.problem(
                file, node.line, f"a line must be a mapping with 'text:', not {node.kind()}"
            )
            return
        text = self.required_text(text_node, "text", file)
        if text is not None:
            self.add_line(b, _one_line(text), lid, [*layers, layer], file, node.line)

    def line_id(self, node: _Node, file: str) -> str | None:
        id_node: _Node | None = node.value.get("id")
        if id_node is None or id_node.value is None:
            return None
        lid = id_node.text()
        if lid is None or not lid.strip() or "\n" in lid:
            self.problem(file, id_node.line, "line id must be a non-empty single-line name")
            return None
        return lid.strip()

    # ------------------------------------------------------------ output and run sections

    def section(self, node: _Node | None, file: str, name: str, keys: Sequence[str]) -> _Node:
        if node is None or node.value is None:
            return _Node({}, 0, 0)
        if not node.is_map:
            self.problem(file, node.line, f"{name} must be a mapping, not {node.kind()}")
            return _Node({}, 0, 0)
        self.check_keys(node, file, keys, "key")
        return node

    def output_settings(self, node: _Node | None, file: str, folder: Path) -> OutputSettings:
        m = self.section(node, file, "output", OUTPUT_KEYS).value
        out_dir = self.setting(
            m,
            file,
            "dir",
            lambda v: isinstance(v, str) and v.strip() != "" and "\x00" not in v,
            "output.dir must be a folder path",
        )
        fmt = self.setting(
            m,
            file,
            "format",
            lambda v: v in OUTPUT_FORMATS,
            f"output.format must be one of {', '.join(OUTPUT_FORMATS)}",
        )
        book = self.setting(
            m,
            file,
            "book",
            lambda v: (
                isinstance(v, str)
                and v.lower().endswith(".m4b")
                and len(v) > 4
                and "/" not in v
                and "\\" not in v
                and v.isprintable()
            ),
            "output.book must be a file name ending in .m4b (written in the output folder)",
        )
        subtitles = self.setting(
            m,
            file,
            "subtitles",
            lambda v: isinstance(v, list) and all(s in SUBTITLE_FORMATS for s in v),
            "output.subtitles must be a list of srt and/or vtt, such as [srt, vtt]",
            plain=False,
        )
        lufs = self.setting(
            m,
            file,
            "loudness_lufs",
            lambda v: _is_number(v) and LOUDNESS_LUFS_RANGE[0] <= v <= LOUDNESS_LUFS_RANGE[1],
            "output.loudness_lufs must be a number from -70 to -5 (LUFS; -18 is common for "
            "audiobooks)",
        )
        return OutputSettings(
            dir=folder / out_dir if out_dir is not None else None,
            format=fmt,
            book=book,
            subtitles=tuple(dict.fromkeys(subtitles or ())),
            loudness_lufs=float(lufs) if lufs is not None else None,
        )

    def run_settings(self, node: _Node | None, file: str) -> RunSettings:
        m = self.section(node, file, "run", RUN_KEYS).value
        return RunSettings(
            backend=self.setting(
                m, file, "backend", lambda v: v in BACKENDS, "run.backend must be coze or local"
            ),
            base_url=self.setting(
                m,
                file,
                "base_url",
                lambda v: isinstance(v, str) and v.startswith(("http://", "https://")),
                "run.base_url must be an http:// or https:// URL",
            ),
            qps=self.setting(
                m,
                file,
                "qps",
                lambda v: _is_number(v) and v > 0,
                "run.qps must be a number above 0 (requests per second)",
                float,
            ),
            concurrency=self.setting(
                m,
                file,
                "concurrency",
                lambda v: _is_whole(v) and v >= 1,
                "run.concurrency must be a whole number, 1 or more",
            ),
            retries=self.setting(
                m,
                file,
                "retries",
                lambda v: _is_whole(v) and v >= 0,
                "run.retries must be a whole number, 0 or more",
            ),
            max_chunk_bytes=self.setting(
                m,
                file,
                "max_chunk_bytes",
                lambda v: _is_whole(v) and 1 <= v <= MAX_INPUT_BYTES,
                f"run.max_chunk_bytes must be a whole number from 1 to {MAX_INPUT_BYTES}",
            ),
        )

    def setting(
        self,
        m: Mapping[str, _Node],
        file: str,
        key: str,
        ok: Callable[[Any], bool],
        message: str,
        convert: Callable[[Any], Any] | None = None,
        *,
        plain: bool = True,
    ) -> Any:
        """The value of ``key`` if ``ok(value)``; else report ``message`` and return None."""
        node = m.get(key)
        if node is None or node.value is None:
            return None
        value = node.value
        if not plain and isinstance(value, list):
            value = [item.value for item in value]
        elif isinstance(value, dict | list):
            value = None
        if value is None or not ok(value):
            shown = node.kind() if isinstance(node.value, dict | list) else repr(value)
            self.problem(file, node.line, f"{message}, not {shown}")
            return None
        return convert(value) if convert is not None else value

    # ------------------------------------------------------------ CSV

    def load_csv(self, path: Path, display: str, layers: list[_Layer]) -> None:
        try:
            stream = path.open("rb")
        except FileNotFoundError:
            self.problem(display, None, "no such file")
            return
        except OSError as e:
            self.problem(display, None, f"cannot read it: {e.strerror or e}")
            return
        with stream:
            _CsvReader(self, stream, display, layers).read()


class _Utf8Lines:
    """A binary file's lines as text, one at a time, remembering the first undecodable byte."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.first_bad: tuple[int, str] | None = None  # (line, message)
        self.bad_lines = 0

    def __iter__(self) -> Iterator[str]:
        offset = 0
        for number, raw in enumerate(self.stream, 1):
            base = offset
            offset += len(raw)
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw, base = raw[len(codecs.BOM_UTF8) :], base + len(codecs.BOM_UTF8)
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as e:
                self.bad_lines += 1
                if self.first_bad is None:
                    self.first_bad = (number, _not_utf8(raw, e, base))
                yield raw.decode("utf-8", "replace")


class _CsvReader:
    """One pass over a CSV manifest: rows become lines as they are read, never all at once."""

    def __init__(self, loader: _Loader, stream: BinaryIO, file: str, layers: list[_Layer]) -> None:
        self.loader = loader
        self.file = file
        self.layers = layers
        self.lines = _Utf8Lines(stream)
        self.columns: dict[str, int] = {}
        self.width = 0
        self.refused_ids: set[str] = set()
        self.rows = 0

    def problem(self, line: int | None, message: str) -> None:
        self.loader.problem(self.file, line, message)

    def read(self) -> None:
        before = len(self.loader.problems)
        self.records()
        self.report_encoding()
        if len(self.loader.problems) > before:
            return
        if not self.width:
            self.problem(
                None,
                "the file is empty: a CSV manifest needs a header row "
                "(chapter,text,...) and one row per line",
            )
        elif not self.rows:
            self.problem(None, "no rows: a CSV manifest needs one row per line after its header")

    def records(self) -> None:
        reader = csv.reader(iter(self.lines), strict=True)
        start = 1  # the physical line where the next record starts
        try:
            for record in reader:
                if any(cell.strip() for cell in record):
                    if not self.width:
                        if not self.header(record, start):
                            return
                    else:
                        self.row(record, start)
                start = reader.line_num + 1
        except csv.Error as e:
            self.problem(start, f"CSV syntax error in the record starting here: {_csv_hint(e)}")

    def report_encoding(self) -> None:
        if self.lines.first_bad is None:
            return
        line, message = self.lines.first_bad
        more = self.lines.bad_lines - 1
        also = f" ({more} more lines are not UTF-8 either)" if more else ""
        self.problem(line, f"{message}{also}; save the file as UTF-8 (in Excel: CSV UTF-8)")

    def header(self, record: list[str], line: int) -> bool:
        names = [cell.strip() for cell in record]
        self.width = len(names)
        if not any(name in CSV_COLUMNS for name in names):
            self.problem(
                line,
                "no header row: the first row must name the columns, such as chapter,text,voice_id",
            )
            return False
        for index, name in enumerate(names):
            if not name:
                self.problem(line, f"column {index + 1} has no name: name it or remove it")
            elif name in self.columns:
                self.problem(line, f"{name}: duplicate column")
            elif name not in CSV_COLUMNS:
                self.problem(line, _unknown(name, "column", CSV_COLUMNS))
            else:
                self.columns[name] = index
        missing = [c for c in CSV_REQUIRED if c not in self.columns]
        for name in missing:
            self.problem(line, f"the header has no {name} column (required: chapter, text)")
        return not missing

    def cell(self, record: list[str], name: str) -> str:
        index = self.columns.get(name)
        return record[index].strip() if index is not None and index < len(record) else ""

    def row(self, record: list[str], line: int) -> None:
        self.rows += 1
        if len(record) > self.width:
            self.problem(
                line,
                f"row has {len(record)} cells but the header has {self.width} "
                "columns; quote cells that hold commas",
            )
        cid = self.cell(record, "chapter")
        text = _one_line(self.cell(record, "text"))
        if not cid:
            self.problem(line, "chapter is empty: every row needs its chapter id")
        if not text:
            self.problem(line, "text is empty")
        layer = self.layer(record, line)
        if not cid or cid in self.refused_ids:
            return
        b = self.loader.chapter(cid, None, self.file, line, append=True)
        if not b.registered:
            self.refused_ids.add(cid)
            return
        if b.title is None:
            b.title = self.cell(record, "title") or None
        lid = self.cell(record, "id") or None
        if text:
            self.loader.add_line(b, text, lid, [*self.layers, layer], self.file, line)

    def layer(self, record: list[str], line: int) -> _Layer:
        values: dict[str, Any] = {}
        invalid: set[str] = set()
        for name in LAYER_KEYS:
            cell = self.cell(record, name)
            if not cell:
                continue
            value, message = _csv_value(name, cell)
            if message is not None:
                self.problem(line, message)
                invalid.add(name)
            elif (normal := _normalise(name, value)) is not None:
                values[name] = normal
        return _Layer(values, frozenset(invalid)) if values or invalid else _EMPTY_LAYER


def _csv_hint(error: csv.Error) -> str:
    if "new-line character seen in unquoted field" in str(error):
        # csv's own advice (universal-newline mode) is about Python, not about the file.
        return (
            "a lone carriage return (CR) line break; save the file with LF or CRLF line ends, "
            "or quote the cell"
        )
    return f"{error}; check its quotes (a quote inside a quoted cell is written twice)"


_CSV_WHOLE = ("sample_rate", "loudness_rate", "pause_ms")
_CSV_NUMBER = ("speed", "emotion_scale")


def _csv_value(name: str, cell: str) -> tuple[Any, str | None]:
    """A CSV cell as the type the field takes, and the check's message (None when fine)."""
    value: Any = cell
    if name in _CSV_WHOLE or name in _CSV_NUMBER:
        try:
            value = int(cell) if name in _CSV_WHOLE else float(cell)
        except ValueError:
            try:
                value = float(cell)
            except ValueError:
                return None, f"{name} {cell!r} is not a number"
            if name in _CSV_WHOLE and value.is_integer():
                value = int(value)  # "24000.0" from a spreadsheet
    return value, _check_value(name, value)
