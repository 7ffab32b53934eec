"""A run's outcome: chapter reports, the run's status, stale outputs, the ``RunReport``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.errors import ApiError
from pipeline.finishing import ChapterState
from pipeline.planning import Plan
from pipeline.report import REPORT_NAME, ChapterError, ChapterReport, RunReport, Totals


def error_of(error: ApiError, line: str | None) -> ChapterError:
    return ChapterError(error.code, error.message, error.logid, line)


def locate(error: ChapterError, state: ChapterState) -> ChapterError:
    """``error`` with the FILE:LINE of its line in the job's sources, when it names one."""
    if error.line is None or error.file_line is not None:
        return error
    for line in state.plan.chapter.lines:
        if line.id == error.line:
            where = line.file if line.lineno is None else f"{line.file}:{line.lineno}"
            return replace(error, file_line=where)
    return error


def describe(error: ChapterError) -> str:
    where = f" at line {error.line}" if error.line else ""
    if error.file_line:
        where += f" ({error.file_line})"
    logid = f" (logid {error.logid})" if error.logid else ""
    return f"code {error.code}{where}: {error.message}{logid}"


def chapter_report(
    state: ChapterState, quality_flags: list[dict[str, Any]] | None = None
) -> ChapterReport:
    chapter = state.plan.chapter
    # "ok" only for a file that is there: the report must match the disk.
    output = state.output if state.output is not None and state.output.is_file() else None
    if output is not None:
        status = "ok"
    elif state.error is not None:
        status = "failed"
    else:
        status = "pending"
    return ChapterReport(
        id=chapter.id,
        title=chapter.title,
        status=status,
        output=None if output is None else output.name,
        duration_s=None if output is None else state.duration_s,
        lines=len(chapter.lines),
        chunks=len(state.plan.chunks),
        error=None if state.error is None else locate(state.error, state),  # FILE:LINE
        subtitles=state.subtitles if output is not None else [],
        dubbing=state.dubbing,
        quality_flags=quality_flags or [],
    )


def run_status(
    chapters: list[ChapterReport], *, fatal: bool, interrupted: bool, book_stopped: bool = False
) -> str:
    """``book_stopped``: the job's book was not written because the run was stopped."""
    if fatal:
        return "aborted"
    if interrupted and (book_stopped or any(c.status == "pending" for c in chapters)):
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


def note_stale_outputs(
    report: RunReport,
    current: Iterable[str],
    previous: dict[str, str],
    out_dir: Path,
    say: Callable[[str], None],
) -> None:
    """Name in ``report`` (and say) the files an earlier run of a changed job left behind."""
    stale = stale_outputs(current, previous, out_dir)
    if stale:
        report.extra["stale_outputs"] = stale
        say(
            "not in this job, left from an earlier run of a changed manifest (delete them if "
            f"they are not wanted): {', '.join(stale)}"
        )


def plan_totals(plan: Plan) -> Totals:
    """A run's totals before anything is sent: the plan's sizes, nothing counted yet."""
    return Totals(
        chapters=len(plan.chapters),
        lines=plan.lines,
        chunks=plan.chunk_count,
        characters=plan.characters,
        bytes=plan.utf8_bytes,
    )
