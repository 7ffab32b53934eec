"""A run's outcome: chapter reports, the run's status, stale outputs, the ``RunReport``."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipeline.errors import ApiError
from pipeline.finishing import ChapterState
from pipeline.report import REPORT_NAME, ChapterError, ChapterReport


def error_of(error: ApiError, line: str | None) -> ChapterError:
    return ChapterError(error.code, error.message, error.logid, line)


def describe(error: ChapterError) -> str:
    where = f" at line {error.line}" if error.line else ""
    logid = f" (logid {error.logid})" if error.logid else ""
    return f"code {error.code}{where}: {error.message}{logid}"


def chapter_report(
    state: ChapterState, quality_flags: list[dict[str, Any]] | None = None
) -> ChapterReport:
    chapter = state.plan.chapter
    if state.output is not None:
        status = "ok"
    elif state.error is not None:
        status = "failed"
    else:
        status = "pending"
    return ChapterReport(
        id=chapter.id,
        title=chapter.title,
        status=status,
        output=None if state.output is None else state.output.name,
        duration_s=state.duration_s,
        lines=len(chapter.lines),
        chunks=len(state.plan.chunks),
        error=state.error,
        subtitles=state.subtitles,
        dubbing=state.dubbing,
        quality_flags=quality_flags or [],
    )


def run_status(chapters: list[ChapterReport], *, fatal: bool, interrupted: bool) -> str:
    if fatal:
        return "aborted"
    if interrupted and any(c.status == "pending" for c in chapters):
        return "interrupted"
    ok = sum(c.status == "ok" for c in chapters)
    if ok == len(chapters):
        return "ok"
    return "failed" if ok == 0 else "partial"


def stale_outputs(current: Iterable[str], previous: dict[str, str], out_dir: Path) -> list[str]:
    """Files an earlier run wrote that this job no longer makes (still on disk)."""
    # A chapter that was removed, renamed or changed format leaves its old file behind.
    names = set(current)
    return sorted(
        output
        for output in previous.values()
        if output not in names and (out_dir / output).is_file()
    )


def read_previous_outputs(out_dir: Path) -> dict[str, str]:
    """Chapter id -> output file name, from the report.json of an earlier run, if any.

    A report that cannot be read is no reason to stop a run: it only means no stale
    outputs can be named.
    """
    try:
        data = json.loads((out_dir / REPORT_NAME).read_text(encoding="utf-8"))
        chapters = data["chapters"]
        return {
            str(c["id"]): str(c["output"])
            for c in chapters
            if isinstance(c, dict) and c.get("output") and "/" not in str(c["output"])
        }
    except (OSError, ValueError, KeyError, TypeError):
        return {}
