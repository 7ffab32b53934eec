"""CSV manifests (``.csv``): a header row naming the columns, then one row per line.

Rows of one chapter id make one chapter, in file order; a problem names the physical line
where its record starts (the spreadsheet row for files without multi-line cells).
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from pipeline.manifest.fields import check_value, normalise
from pipeline.manifest.model import (
    CSV_COLUMNS,
    CSV_REQUIRED,
    EMPTY_LAYER,
    LAYER_KEYS,
    TEXT_KEYS,
    Layer,
    Source,
    SourceChapter,
    SourceLine,
)
from pipeline.manifest.readers import ReadContext
from pipeline.manifest.readers.cuetimes import cue_times
from pipeline.manifest.text import not_utf8, one_line, read_bytes, unknown


def read(path: Path, context: ReadContext) -> Source:
    return Source(_CsvReader(context).chapters(path))


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
                    self.first_bad = (number, not_utf8(raw, e, base))
                yield raw.decode("utf-8", "replace")


class _CsvReader:
    """One pass over a CSV manifest: rows become lines as they are read, never all at once."""

    def __init__(self, context: ReadContext) -> None:
        self.context = context
        self.file = context.display
        self.columns: dict[str, int] = {}
        self.width = 0
        self.rows = 0
        self.problems = 0

    def problem(self, line: int | None, message: str) -> None:
        self.problems += 1
        self.context.problem(self.file, line, message)

    def chapters(self, path: Path) -> Iterator[SourceChapter]:
        data = read_bytes(path)  # a regular file of bounded size, read with a bound
        if isinstance(data, str):
            self.problem(None, data)
            return
        with io.BytesIO(data) as stream:
            lines = _Utf8Lines(stream)
            yield from self.records(lines)
        self.report_encoding(lines)
        if self.problems:
            return
        if not self.width:
            self.problem(
                None,
                "the file is empty: a CSV manifest needs a header row "
                "(chapter,text,...) and one row per line",
            )
        elif not self.rows:
            self.problem(None, "no rows: a CSV manifest needs one row per line after its header")

    def records(self, lines: _Utf8Lines) -> Iterator[SourceChapter]:
        reader = csv.reader(iter(lines), strict=True)
        start = 1  # the physical line where the next record starts
        try:
            for record in reader:
                if any(cell.strip() for cell in record):
                    if not self.width:
                        if not self.header(record, start):
                            return
                    elif (chapter := self.row(record, start)) is not None:
                        yield chapter
                start = reader.line_num + 1
        except csv.Error as e:
            self.problem(start, f"CSV syntax error in the record starting here: {_csv_hint(e)}")

    def report_encoding(self, lines: _Utf8Lines) -> None:
        if lines.first_bad is None:
            return
        line, message = lines.first_bad
        more = lines.bad_lines - 1
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
                self.problem(line, unknown(name, "column", CSV_COLUMNS))
            else:
                self.columns[name] = index
        missing = [c for c in CSV_REQUIRED if c not in self.columns]
        for name in missing:
            self.problem(line, f"the header has no {name} column (required: chapter, text)")
        return not missing

    def cell(self, record: list[str], name: str) -> str:
        index = self.columns.get(name)
        return record[index].strip() if index is not None and index < len(record) else ""

    def row(self, record: list[str], line: int) -> SourceChapter | None:
        """The row as a one-line chapter; the resolver joins rows of one id (``append``)."""
        self.rows += 1
        if len(record) > self.width:
            self.problem(
                line,
                f"row has {len(record)} cells but the header has {self.width} "
                "columns; quote cells that hold commas",
            )
        cid = self.cell(record, "chapter")
        text = one_line(self.cell(record, "text"))
        if not cid:
            self.problem(line, "chapter is empty: every row needs its chapter id")
        if not text:
            self.problem(line, "text is empty")
        layer = self.layer(record, line)
        if not cid:
            return None
        lid = self.cell(record, "id") or None
        speaker = self.cell(record, "speaker") or None
        start, end = cue_times(self.cell(record, "start"), self.cell(record, "end"), line,
                               self.problem)
        lines = (
            (SourceLine(text, self.file, line, id=lid, speaker=speaker, start=start, end=end,
                        fields=layer),)
            if text
            else ()
        )
        title = self.cell(record, "title") or None
        return SourceChapter(cid, title, self.file, line, lines, self.context.outer, append=True)

    def layer(self, record: list[str], line: int) -> Layer:
        values: dict[str, Any] = {}
        invalid: set[str] = set()
        for name in (*LAYER_KEYS, *TEXT_KEYS):
            cell = self.cell(record, name)
            if not cell:
                continue
            value, message = _csv_value(name, cell)
            if message is not None:
                self.problem(line, message)
                invalid.add(name)
            elif (normal := normalise(name, value)) is not None:
                values[name] = normal
        return Layer(values, frozenset(invalid)) if values or invalid else EMPTY_LAYER


def _csv_hint(error: csv.Error) -> str:
    if "new-line character seen in unquoted field" in str(error):
        # csv's own advice (universal-newline mode) is about Python, not about the file.
        return (
            "a lone carriage return (CR) line break; save the file with LF or CRLF line ends, "
            "or quote the cell"
        )
    return f"{error}; check its quotes (a quote inside a quoted cell is written twice)"


_CSV_WHOLE = ("sample_rate", "loudness_rate", "pause_ms")
_CSV_NUMBER = ("speed", "emotion_scale", "max_speed")


_CSV_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _csv_value(name: str, cell: str) -> tuple[Any, str | None]:
    """A CSV cell as the type the field takes, and the check's message (None when fine)."""
    value: Any = cell
    if name == "normalize":
        value = _CSV_BOOLEANS.get(cell.lower(), cell)
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
    return value, check_value(name, value)
