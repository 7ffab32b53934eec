"""Subtitle files (.srt, .vtt, .ass, .ssa) -> one chapter of timed lines, with pysubs2.

What is spoken is the cue's plain text: ASS override blocks (``{\\i1}``), HTML and WebVTT tags
(``<i>``, ``<c.x>``, ``<00:01.000>``) and ``\\N`` line breaks are not. The speaker is the ASS
``Name``, a WebVTT ``<v NAME>`` voice, a ``NAME:`` prefix of the cue (stripped from the text),
or else an ASS style other than ``Default``. Empty cues, ASS comments and ASS drawings are
skipped with a note. pysubs2 reads loosely (an SRT timing line it cannot read becomes text of
the cue before), so the timing lines are checked here first, each error as FILE:LINE.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pysubs2
from pysubs2.time import TIMESTAMP

from pipeline.books.files import decode, problem, read_capped
from pipeline.books.model import Skipped, SourceBook, SourceChapter, SourceLine
from pipeline.books.xhtml import collapse
from pipeline.errors import ManifestError, Problem

FORMATS = {".srt": "srt", ".vtt": "vtt", ".ass": "ass", ".ssa": "ssa"}
DEFAULT_MAX_BYTES = 32 * 1024 * 1024

_VTT_TIMESTAMP = re.compile(r"(\d{0,4}:)?(\d{2}):(\d{2})\.(\d{2,3})")
_TAG = re.compile(r"<[^>]*>")
_VOICE = re.compile(r"<v(?:\.[^\s>]*)?\s+([^>]+)>")
_DRAWING = re.compile(r"\\p[1-9]")
# "JOHN: Hi", "- Mary Ann: Hello", "Guard 2: Halt", "老王：走吧": up to three words and maybe a
# number; what follows must not start with a digit ("At 10:30" names nobody).
_PREFIX = re.compile(
    r"-?\s*([^\W\d_][^\W\d_'’.-]*(?: [^\W\d_][^\W\d_'’.-]*){0,2}(?: \d{1,2})?)\s*[:：]\s*"
    r"(?![\s\d])(.+)",
    re.DOTALL,
)
_ID = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class SubtitleOptions:
    encoding: str = "utf-8"
    speaker_prefix: bool = True  # take "NAME: text" as a speaker
    speaker_from_style: bool = True  # an ASS style other than Default names the speaker
    max_bytes: int = DEFAULT_MAX_BYTES


def speaker_prefix(text: str) -> tuple[str | None, str]:
    """(``NAME``, rest) for ``NAME: rest`` where NAME looks like a name, else (None, text)."""
    match = _PREFIX.fullmatch(text)
    if match is None:
        return None, text
    name = match.group(1)
    if not (name[0].isupper() or "\u3400" <= name[0] <= "\u9fff"):
        return None, text
    return name, match.group(2)


def plain_text(raw: str) -> str:
    """What is spoken of a cue: override blocks, tags and markup out, lines joined."""
    text = re.sub(r"\{[^}]*\}", "", raw)
    text = text.replace("\\N", "\n").replace("\\n", "\n").replace("\\h", " ")
    return collapse(html.unescape(_TAG.sub("", text)))


def _timing_lines(text: str, fmt: str, display: str) -> tuple[list[int], list[Problem]]:
    """1-based lines of each cue's timing (SRT/VTT) or event (ASS), and bad timing lines."""
    lines: list[int] = []
    problems: list[Problem] = []
    stamp = _VTT_TIMESTAMP if fmt == "vtt" else TIMESTAMP
    for number, line in enumerate(text.splitlines(), 1):
        if fmt in ("ass", "ssa"):
            if re.match(r"\s*(Dialogue|Comment)\s*:", line):
                lines.append(number)
                fields = line.split(":", 1)[1].split(",")
                if len(fields) < 10 or not all(TIMESTAMP.fullmatch(f.strip())
                                               for f in fields[1:3]):
                    problems.append(Problem(display, number, "bad event: want 10 fields with "
                                            "start and end as H:MM:SS.cc"))
        elif "-->" in line:
            if len(stamp.findall(line)) == 2:
                lines.append(number)
            else:
                example = "00:00:01.000" if fmt == "vtt" else "00:00:01,000"
                problems.append(Problem(display, number, f"bad cue timing {line.strip()!r}: "
                                        f"want {example} --> {example[:-5]}3{example[-4:]}"))
    return lines, problems


def _vtt_blocks(text: str, display: str) -> tuple[str, list[Skipped]]:
    """``text`` with NOTE, STYLE and REGION blocks blanked (pysubs2 would read them as cue
    text), and the NOTEs as skipped; lines keep their numbers."""
    lines = text.splitlines()
    notes: list[Skipped] = []
    start = 0
    while start < len(lines):
        stop = start
        while stop < len(lines) and lines[stop].strip():
            stop += 1
        head = lines[start].split(maxsplit=1)[0] if stop > start else ""
        if head in ("NOTE", "STYLE", "REGION") and "-->" not in "".join(lines[start:stop]):
            if head == "NOTE":
                body = collapse(" ".join(lines[start:stop])[4:])
                notes.append(Skipped(body, "WebVTT comment (NOTE)", display, start + 1))
            lines[start:stop] = [""] * (stop - start)
        start = stop + 1
    return "\n".join(lines), notes


def read_subtitles(path: Path, options: SubtitleOptions | None = None) -> SourceBook:
    """One chapter of cues with start/end seconds; ``ManifestError`` (FILE:LINE) when bad."""
    options = options or SubtitleOptions()
    display = str(path)
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise problem(display, None, f"not a subtitle file: use one of {', '.join(FORMATS)}")
    text = decode(read_capped(Path(path), display, options.max_bytes), display, options.encoding)
    comments: list[Skipped] = []
    if fmt == "vtt":
        text, comments = _vtt_blocks(text, display)
    lines, problems = _timing_lines(text, fmt, display)
    if problems:
        raise ManifestError(problems)
    try:
        subs = pysubs2.SSAFile.from_string(text, format_=fmt, keep_unknown_html_tags=True)
    except (pysubs2.exceptions.Pysubs2Error, ValueError, KeyError, IndexError) as error:
        raise problem(display, None, f"not a readable {fmt} file: {error}") from None
    if len(lines) != len(subs.events):  # a shape this check does not know: no line numbers
        lines = []
    book = _book(subs, lines, display, Path(path).stem, options)
    return replace(book, skipped=tuple(sorted(
        (*book.skipped, *comments), key=lambda s: s.line or 0)))


def _book(subs: Any, lines: list[int], display: str, stem: str, options: SubtitleOptions
          ) -> SourceBook:
    out: list[SourceLine] = []
    skipped: list[Skipped] = []
    problems: list[Problem] = []
    for index, event in enumerate(subs.events):
        lineno = lines[index] if lines else None
        start, end = event.start / 1000, event.end / 1000
        if end < start:
            problems.append(Problem(display, lineno, f"cue ends ({end:.3f} s) before it starts "
                                    f"({start:.3f} s)"))
            continue
        reason = _skip_reason(event)
        speaker, spoken = _speaker(event, options)
        if reason is None and not spoken:
            reason = "empty cue"
        if reason is not None:
            skipped.append(Skipped(event.text, reason, display, lineno))
            continue
        fields: dict[str, Any] = {"index": index + 1}
        if event.style and event.style != "Default":
            fields["style"] = event.style
        out.append(SourceLine(spoken, display, lineno, speaker=speaker, start_s=start,
                              end_s=end, fields=fields))
    if problems:
        raise ManifestError(problems)
    cid = _ID.sub("-", stem).strip("-.")[:100] or "ch01"
    first = out[0].line if out else None
    chapter = SourceChapter(cid, None, tuple(out), display, first)
    return SourceBook(display, (chapter,) if out else (), tuple(skipped))


def _skip_reason(event: Any) -> str | None:
    if event.type == "Comment":
        return "ASS comment line"
    if _DRAWING.search(event.text):
        return "ASS drawing"
    return None


def _speaker(event: Any, options: SubtitleOptions) -> tuple[str | None, str]:
    voice = _VOICE.search(event.text)
    text = plain_text(event.text)
    name = (event.name or "").strip() or (voice.group(1).strip() if voice else None)
    if options.speaker_prefix and text:
        prefixed, rest = speaker_prefix(text)
        if prefixed is not None:
            return name or prefixed, rest
    if name is None and options.speaker_from_style and event.style not in ("", "Default"):
        name = event.style
    return name, text
