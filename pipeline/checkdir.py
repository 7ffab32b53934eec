"""``tts-pipeline check OUT_DIR``: the quality gate's measures over finished files, offline.

Which files: the chapters (and their subtitles) named by ``report.json`` when the folder has
one, else every audio file in it (hidden folders, such as the chunk cache, are skipped); and
every ``clips.csv`` (per-line clips: its ``file`` and ``text`` columns).

How a file is judged: a chapter with its chunk map (``<chapter>.chunks.json``, written by
finishing, see pipeline/audio/chunkmap.py) is cut at its chunks, and each chunk is judged as
its answer was, with its text, voice and speed, so that all the rules apply, the duration
too (the pace is learnt per voice and file, as the runner learns it per voice). Without a
map (audio made elsewhere, or by an older version), a chapter with subtitles (``.srt`` or
``.vtt``) is cut at its cues, joined into spans of whole sentences: readable subtitles cut a
chunk at its sentences and clauses (sharing its time by characters, edge to edge, where no
pause shows where), and a clause is too short a thing to judge a pace on. A cue joins the one
before it when they touch, or when that one ends inside a sentence and the pause between is
short (``_CLAUSE_GAP_S``), as inside a chunk; never across a line's pause. Without either,
the file is cut in ``WINDOW_S`` windows judged without text: no duration rule, and silences
are measured across window ends. Clips are judged whole, with their text. Files are decoded
as a stream: memory stays at one segment, whatever the length.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.audio.avutil import av_errors
from pipeline.audio.chunkmap import ChunkMapError, chunk_map_path, read_chunk_map
from pipeline.audio.model import AudioError
from pipeline.audio.process import decode_blocks, open_part
from pipeline.errors import ConfigError
from pipeline.formats import AUDIO_FILE_FORMATS
from pipeline.quality.config import QualityConfig
from pipeline.quality.gate import QualityGate, Verdict
from pipeline.quality.measures import Measures, measure
from pipeline.report import REPORT_NAME
from pipeline.speech import DEFAULT_SAMPLE_RATE

WINDOW_S = 30.0
AUDIO_SUFFIXES = AUDIO_FILE_FORMATS
CLIPS_CSV = "clips.csv"
# Rules that mean nothing for a window cut at an arbitrary point.
_WINDOW_IGNORES = frozenset({"edge_silence", "duration_short", "duration_long"})
# Cues closer than this are one span: SRT and WebVTT times are whole milliseconds.
_TOUCH_S = 0.0015
# A pause inside a sentence (at a comma) is shorter than this; a line's pause may not be.
_CLAUSE_GAP_S = 1.0
_SENTENCE_END = re.compile(r"[.!?…。！？][\"'”’»)\]}」』》】〉）]*\s*$")
_CUE_TIME = re.compile(
    r"^\s*(\d+):(\d{2}):(\d{2})[,.](\d{3})\s*-->\s*(\d+):(\d{2}):(\d{2})[,.](\d{3})"
)

Floats = npt.NDArray[np.float32]
_NO_SAMPLES: Floats = np.zeros(0, dtype=np.float32)


@dataclass(frozen=True)
class Finding:
    """One place in one file that breaks the gate's rules."""

    file: str  # relative to the output folder
    start_s: float
    end_s: float
    rules: tuple[str, ...]
    text: str | None = None
    measures: dict[str, float] = field(default_factory=dict)
    message: str | None = None  # for a file that cannot be read
    line: str | None = None  # from the chunk map: the line's id and where it is in the job
    source_file: str | None = None
    file_line: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": self.file,
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "rules": list(self.rules),
        }
        if self.text is not None:
            out["text"] = self.text
        if self.measures:
            out["measures"] = self.measures
        if self.message is not None:
            out["message"] = self.message
        for key in ("line", "source_file", "file_line"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


@dataclass
class CheckResult:
    files: int = 0
    segments: int = 0
    findings: list[Finding] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "segments": self.segments,
            "flagged": len(self.findings),
            "findings": [f.to_json() for f in self.findings],
        }


@dataclass(frozen=True)
class _Span:
    """Where to cut, and what is known of what was said there."""

    start_s: float
    end_s: float
    text: str | None
    voice: str | None = None  # the gate's pace key; None: the file's
    speed: float = 1.0
    line: str | None = None
    source_file: str | None = None
    file_line: int | None = None


@dataclass(frozen=True)
class _Segment:
    start_s: float
    end_s: float
    span: _Span
    samples: Floats
    rate: int

    @property
    def text(self) -> str | None:
        return self.span.text


def check_output_dir(
    out_dir: Path, config: QualityConfig | None = None, *, pcm_rate: int = DEFAULT_SAMPLE_RATE
) -> CheckResult:
    """Every finding in ``out_dir``'s chapter files and clips; see the module docstring.

    ``pcm_rate`` is the rate of headerless ``.pcm`` files, which do not say it.
    """
    if not out_dir.is_dir():
        raise ConfigError(f"{out_dir}: not a folder; give the output folder of a run")
    result = CheckResult()
    for path, subtitles in _chapter_files(out_dir):
        result.files += 1
        checker = _FileChecker(out_dir, path, config or QualityConfig(), result)
        try:
            checker.run(subtitles, pcm_rate)
        except AudioError as e:
            result.findings.append(Finding(checker.name, 0.0, 0.0, ("unreadable",), message=str(e)))
    for table in sorted(out_dir.rglob(CLIPS_CSV)):
        if not _hidden(table.relative_to(out_dir)):
            _check_clips(out_dir, table, config or QualityConfig(), pcm_rate, result)
    return result


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _chapter_files(out_dir: Path) -> list[tuple[Path, Path | None]]:
    """(chapter audio, its subtitles or None), from report.json, else from the folder."""
    named = _report_chapters(out_dir)
    if named is None:
        clip_dirs = {t.parent for t in out_dir.rglob(CLIPS_CSV)}
        named = [
            p
            for p in sorted(out_dir.rglob("*"))
            if p.suffix.lower() in AUDIO_SUFFIXES
            and p.is_file()
            and not _hidden(p.relative_to(out_dir))
            and p.parent not in clip_dirs
        ]
    return [(p, _subtitles_of(p)) for p in named]


def _report_chapters(out_dir: Path) -> list[Path] | None:
    try:
        data = json.loads((out_dir / REPORT_NAME).read_text(encoding="utf-8"))
        chapters = data["chapters"]
        names = [str(c["output"]) for c in chapters if isinstance(c, dict) and c.get("output")]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    # A name is a file of the folder itself; anything else in a report is not trusted.
    return [out_dir / n for n in names if "/" not in n and "\\" not in n and n not in ("", "..")]


def _subtitles_of(path: Path) -> Path | None:
    for suffix in (".srt", ".vtt"):
        candidate = path.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def read_cues(path: Path) -> list[tuple[float, float, str]]:
    """(start s, end s, text) of each cue of an SRT or WebVTT file."""
    cues: list[tuple[float, float, str]] = []
    lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    for index, line in enumerate(lines):
        match = _CUE_TIME.match(line)
        if not match:
            continue
        g = [int(x) for x in match.groups()]
        start = g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000
        end = g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000
        text: list[str] = []
        for following in lines[index + 1 :]:
            if not following.strip():
                break
            text.append(following.strip())
        joined = " ".join(text)
        cues.append((start, end, html.unescape(joined) if path.suffix == ".vtt" else joined))
    return cues


def _stream(path: Path, fmt: str, pcm_rate: int) -> tuple[int, Iterator[Floats]]:
    """The file's rate and its audio as mono float arrays, decoded as they are read."""
    with av_errors(f"reading {path.name}"), open_part(path, fmt, pcm_rate) as container:
        if not container.streams.audio:
            raise AudioError(f"{path.name}: no audio stream")
        rate = container.streams.audio[0].codec_context.sample_rate or pcm_rate
    blocks = decode_blocks(path, fmt, pcm_rate, rate, "mono")
    return rate, (b.reshape(-1).astype(np.float32, copy=False) for b in blocks)


def _cut(chunks: Iterator[Floats], rate: int, spans: list[_Span] | None) -> Iterator[_Segment]:
    """Segments at ``spans`` (sorted, not overlapping), or ``WINDOW_S`` windows when None."""
    held: list[Floats] = []
    held_start = held_size = 0  # the first held sample's index in the file, and how many
    queue = list(spans) if spans is not None else None
    index = 0

    def take(start: int, end: int) -> Floats:
        nonlocal held, held_start, held_size
        whole = np.concatenate(held) if held else np.zeros(0, dtype=np.float32)
        piece = whole[max(0, start - held_start) : max(0, end - held_start)]
        rest = whole[max(0, end - held_start) :]
        held, held_start, held_size = [rest], max(end, held_start), rest.size
        return piece

    def next_span() -> tuple[int, int, _Span] | None:
        if queue is None:
            w = round(WINDOW_S * rate)
            return index * w, (index + 1) * w, _Span(index * WINDOW_S, (index + 1) * WINDOW_S, None)
        if index >= len(queue):
            return None
        span = queue[index]
        return round(span.start_s * rate), round(span.end_s * rate), span

    for chunk in chunks:
        held.append(chunk)
        held_size += chunk.size
        span = next_span()
        while span is not None and held_start + held_size >= span[1]:
            yield _Segment(span[0] / rate, span[1] / rate, span[2], take(span[0], span[1]), rate)
            index += 1
            span = next_span()
    span = next_span()
    while span is not None and held_start + held_size > span[0]:
        piece = take(span[0], span[1])
        yield _Segment(span[0] / rate, (span[0] + piece.size) / rate, span[2], piece, rate)
        index += 1
        span = next_span()


class _FileChecker:
    """Judges one chapter file's segments with a gate of its own (its pace, its loudness)."""

    def __init__(self, out_dir: Path, path: Path, config: QualityConfig, result: CheckResult):
        self.out_dir = out_dir
        self.path = path
        self.name = path.relative_to(out_dir).as_posix()
        self.config = config
        self.gate = QualityGate(config)
        self.result = result
        self.judged: dict[int, tuple[_Segment, Measures]] = {}

    def run(self, subtitles: Path | None, pcm_rate: int) -> None:
        fmt = AUDIO_SUFFIXES[self.path.suffix.lower()]
        spans = self._mapped() or (_joined(read_cues(subtitles)) if subtitles else None) or None
        rate, chunks = _stream(self.path, fmt, pcm_rate)
        last: tuple[_Segment, Measures] | None = None
        for index, segment in enumerate(_cut(chunks, rate, spans)):
            m = measure(segment.samples, segment.rate)
            self.result.segments += 1
            if spans:
                rules = self._judge(segment.span, m).rules
            else:
                rules = self._window_rules(m, last[1] if last else None, first=index == 0)
            if rules:
                self._add(segment, rules, m)
            else:
                self._accept(index, segment, m)
            last = segment, m
        if (
            not spans
            and last is not None
            and last[1].trailing_silence_s > self.config.max_edge_silence_s
        ):
            self._add(last[0], ("edge_silence",), last[1])

    def _mapped(self) -> list[_Span] | None:
        """The chunks of the file's chunk map; None without one (a bad one is a finding)."""
        path = chunk_map_path(self.path)
        try:
            found = read_chunk_map(path, self.path)
        except ChunkMapError as e:
            name = path.relative_to(self.out_dir).as_posix()
            self.result.findings.append(Finding(name, 0.0, 0.0, ("unreadable",), message=str(e)))
            return None
        if found is None:
            return None
        return [
            _Span(c.start_s, c.end_s, c.text, c.source.voice, c.source.speed, c.line,
                  c.source.file, c.source.file_line)
            for c in found.chunks
        ]  # fmt: skip

    def _judge(self, span: _Span, m: Measures) -> Verdict:
        voice = self.name if span.voice is None else span.voice
        return self.gate.judge(span.text or "", voice, span.speed, self.name, m)

    def _window_rules(
        self, m: Measures, before: Measures | None, *, first: bool
    ) -> tuple[str, ...]:
        """A window's rules: no text, and its ends are not the file's, except the first's."""
        verdict = self._judge(_Span(0.0, 0.0, None), m)
        rules = [r for r in verdict.rules if r not in _WINDOW_IGNORES]
        if first and m.leading_silence_s > self.config.max_edge_silence_s and m.active_s > 0:
            rules.append("edge_silence")
        if before is not None and "silent" not in verdict.rules:
            # A silence that a window end cuts in two is still one silence.
            across = before.trailing_silence_s + m.leading_silence_s
            if across > self.config.max_gap_s and "gap" not in rules:
                rules.append("gap")
        return tuple(rules)

    def _accept(self, index: int, segment: _Segment, m: Measures) -> None:
        """Teach the gate; earlier segments it now finds bad become findings."""
        span = segment.span
        verdict = self._judge(span, m)
        # Without the samples: only a provisional verdict's segment is looked at again.
        if verdict.provisional:
            self.judged[index] = (dataclasses.replace(segment, samples=_NO_SAMPLES), m)
        voice = self.name if span.voice is None else span.voice
        for ref in self.gate.accept(span.text or "", voice, span.speed, self.name, verdict, index):
            assert isinstance(ref, int)
            earlier, measures = self.judged.pop(ref)
            again = self._judge(earlier.span, measures)
            rules = (
                again.rules
                if earlier.text is not None
                else tuple(r for r in again.rules if r not in _WINDOW_IGNORES)
            )
            if rules:
                self._add(earlier, rules, measures)

    def _add(self, segment: _Segment, rules: tuple[str, ...], m: Measures) -> None:
        span = segment.span
        self.result.findings.append(
            Finding(
                self.name, segment.start_s, segment.end_s, rules, span.text, m.to_json(),
                line=span.line, source_file=span.source_file, file_line=span.file_line,
            )
        )  # fmt: skip


def _joined(cues: list[tuple[float, float, str]]) -> list[_Span]:
    """The cues as spans of whole sentences (see the module docstring)."""
    spans: list[_Span] = []
    for start, end, text in cues:
        last = spans[-1] if spans else None
        gap = start - last.end_s if last is not None else -1.0
        inside = last is not None and not _SENTENCE_END.search(last.text or "")
        if last is not None and (0 <= gap <= _TOUCH_S or (inside and 0 <= gap <= _CLAUSE_GAP_S)):
            spans[-1] = _Span(last.start_s, end, f"{last.text} {text}")
        else:
            spans.append(_Span(start, end, text))
    return spans


def _check_clips(
    out_dir: Path, table: Path, config: QualityConfig, pcm_rate: int, result: CheckResult
) -> None:
    """Each clip of a ``clips.csv`` judged whole, with its text; one gate per clip folder."""
    gate = QualityGate(config)
    chapter = table.parent.relative_to(out_dir).as_posix()
    try:
        with table.open(encoding="utf-8-sig", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("file")]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        name = table.relative_to(out_dir).as_posix()
        result.findings.append(Finding(name, 0.0, 0.0, ("unreadable",), message=str(e)))
        return
    for row in rows:
        path = table.parent / str(row["file"])
        name = path.relative_to(out_dir).as_posix()
        result.files += 1
        fmt = AUDIO_SUFFIXES.get(path.suffix.lower())
        try:
            if fmt is None or "/" in str(row["file"]) or not path.is_file():
                raise AudioError(f"{name}: not an audio file of the clip folder")
            rate, chunks = _stream(path, fmt, pcm_rate)
            samples = np.concatenate(list(chunks) or [np.zeros(0, dtype=np.float32)])
        except AudioError as e:
            result.findings.append(Finding(name, 0.0, 0.0, ("unreadable",), message=str(e)))
            continue
        result.segments += 1
        text = str(row.get("text") or "")
        verdict: Verdict = gate.assess(text, chapter, 1.0, chapter, samples, rate)
        m = verdict.measures
        if not verdict.ok:
            result.findings.append(
                Finding(name, 0.0, m.duration_s, verdict.rules, text, m.to_json())
            )
        else:
            gate.accept(text, chapter, 1.0, chapter, verdict, name)
