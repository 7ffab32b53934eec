"""report.json: what a run did, written at the end of every run (failed and interrupted too)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.errors import StorageError
from pipeline.fileio import atomic_write_text

REPORT_NAME = "report.json"
RUN_STATUSES = ("ok", "partial", "failed", "aborted", "interrupted")
EXIT_CODES = {"ok": 0, "partial": 1, "failed": 1, "aborted": 3, "interrupted": 130}


@dataclass
class Totals:
    chapters: int = 0
    lines: int = 0
    chunks: int = 0
    characters: int = 0
    bytes: int = 0
    requests: int = 0
    retries: int = 0
    cache_hits: int = 0
    billed_characters: int = 0
    audio_seconds: float = 0.0


@dataclass
class ChapterError:
    code: int
    message: str
    logid: str | None
    line: str | None
    file_line: str | None = None  # FILE:LINE of that line in the job's source files


@dataclass
class ChapterReport:
    id: str
    title: str | None
    status: str  # ok | failed | pending (not finished: the run was stopped first)
    output: str | None
    duration_s: float | None
    lines: int
    chunks: int
    error: ChapterError | None = None
    subtitles: list[str] = field(default_factory=list)
    dubbing: dict[str, Any] | None = None  # timed track, clips, fit (pipeline.dubbing)
    quality_flags: list[dict[str, Any]] = field(default_factory=list)  # gatekeeper.Flag.to_json


@dataclass
class RunReport:
    status: str
    started_at: datetime
    finished_at: datetime
    totals: Totals
    chapters: list[ChapterReport]
    error: ChapterError | None = None  # the fatal answer that stopped the run, if any
    book: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def elapsed_s(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": self.status,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "elapsed_s": round(self.elapsed_s, 3),
            "totals": _totals_json(self.totals),
            "chapters": [_chapter_json(c) for c in self.chapters],
        }
        if self.error is not None:
            out["error"] = _error_json(self.error)
        if self.book is not None:
            out["book"] = self.book
        out.update(self.extra)
        return out


def utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _totals_json(t: Totals) -> dict[str, Any]:
    return {
        "chapters": t.chapters,
        "lines": t.lines,
        "chunks": t.chunks,
        "characters": t.characters,
        "bytes": t.bytes,
        "requests": t.requests,
        "retries": t.retries,
        "cache_hits": t.cache_hits,
        "billed_characters": t.billed_characters,
        "audio_seconds": round(t.audio_seconds, 3),
    }


def _error_json(e: ChapterError) -> dict[str, Any]:
    out: dict[str, Any] = {
        "code": e.code, "message": e.message, "logid": e.logid, "line": e.line
    }
    if e.file_line is not None:
        out["file_line"] = e.file_line
    return out


def _chapter_json(c: ChapterReport) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": c.id,
        "title": c.title,
        "status": c.status,
        "output": c.output,
        "duration_s": None if c.duration_s is None else round(c.duration_s, 3),
        "lines": c.lines,
        "chunks": c.chunks,
        "error": None if c.error is None else _error_json(c.error),
    }
    if c.subtitles:
        out["subtitles"] = c.subtitles
    if c.dubbing is not None:
        out["dubbing"] = c.dubbing
    if c.quality_flags:
        out["quality_flags"] = c.quality_flags
    return out


def write_report(directory: Path, report: RunReport) -> Path:
    path = directory / REPORT_NAME
    text = json.dumps(report.to_json(), ensure_ascii=False, indent=2) + "\n"
    try:
        atomic_write_text(path, text)
    except StorageError as exc:
        raise ReportNotWritten(report, exc) from exc
    return path


class ReportNotWritten(StorageError):
    """report.json could not be written (full disk, read-only...) after the run: the chapter
    files stay; ``report`` is the run's report, for the caller to tell what was done."""

    def __init__(self, report: RunReport, cause: StorageError) -> None:
        super().__init__(cause.errno or 0, str(cause))
        self.report = report
