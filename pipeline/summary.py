"""A Markdown summary of a run, for ``--summary`` and for ``$GITHUB_STEP_SUMMARY``.

Built from the report.json dict (so a merged report summarizes the whole job). GitHub caps
a step summary at 1 MiB, so long jobs list at most ``max_chapters`` chapters and
``max_failures`` failures and say how many more report.json holds.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.fileio import append_text

DEFAULT_MAX_CHAPTERS = 200
DEFAULT_MAX_FAILURES = 50
_MARKDOWN = re.compile(r"[\\`*_\[\]]")


def markdown_summary(
    report: dict[str, Any],
    *,
    max_chapters: int = DEFAULT_MAX_CHAPTERS,
    max_failures: int = DEFAULT_MAX_FAILURES,
) -> str:
    """Title with the status, totals table, chapters table, run error and failures."""
    chapters: list[dict[str, Any]] = list(report.get("chapters") or [])
    parts = [_title(report), _totals_table(report, chapters)]
    if report.get("error"):
        parts.append(_run_error(report["error"]))
    if chapters:
        parts.append(_chapters_table(chapters, max_chapters))
    failed = [c for c in chapters if c.get("status") == "failed"]
    if failed:
        parts.append(_failures(failed, max_failures))
    if (fit := _fit_overflows(chapters, max_failures)) is not None:
        parts.append(fit)
    flags = [f for c in chapters for f in c.get("quality_flags") or []]
    if flags:
        parts.append(_quality_flags(flags, max_failures))
    return "\n\n".join(parts) + "\n"


def append_summary(path: Path, text: str) -> None:
    """Append ``text`` to ``path``: other steps of the job write to the same file."""
    # Never through a link, a FIFO or a folder; a failure is one StorageError line.
    append_text(path, text if text.endswith("\n") else text + "\n")


def _title(report: dict[str, Any]) -> str:
    title = f"## tts-pipeline: {_inline(str(report.get('status', 'unknown')))}"
    source = report.get("source")
    if source:
        title += f" — {_inline(str(source))}"
    shard = report.get("shard")
    if isinstance(shard, dict) and "k" in shard and "n" in shard:
        title += f" (shard {_inline(str(shard['k']))}/{_inline(str(shard['n']))})"
    merged = report.get("merged")
    if isinstance(merged, dict):
        title += f" ({_inline(str(merged.get('reports')))} reports merged)"
    return title


def _totals_table(report: dict[str, Any], chapters: list[dict[str, Any]]) -> str:
    totals = report.get("totals") or {}
    ok = sum(1 for c in chapters if c.get("status") == "ok")
    failed = sum(1 for c in chapters if c.get("status") == "failed")
    rows = [
        ("chapters ok", f"{ok} of {len(chapters)}"),
        ("chapters failed", str(failed)),
        ("audio", _hms(totals.get("audio_seconds"))),
        ("characters", _count(totals.get("characters"))),
        ("billed characters", _count(totals.get("billed_characters"))),
        ("requests", _count(totals.get("requests"))),
        ("retries", _count(totals.get("retries"))),
        ("cache hits", _count(totals.get("cache_hits"))),
        ("elapsed", _hms(report.get("elapsed_s"))),
    ]
    quality = report.get("quality")
    if isinstance(quality, dict) and quality.get("enabled"):
        rows.append(("quality re-requests", _count(quality.get("requests"))))
        rows.append(("quality flags", _count(quality.get("flagged"))))
    not_run = len(chapters) - ok - failed
    if not_run:
        rows.insert(2, ("chapters not run", str(not_run)))
    missing = (report.get("merged") or {}).get("missing_shards")
    if missing:
        rows.append(("missing shards", ", ".join(str(k) for k in missing)))
    return _table(("", "total"), rows, align="|---|---:|")


def _chapters_table(chapters: list[dict[str, Any]], limit: int) -> str:
    rows = [
        (
            str(c.get("id")),
            str(c.get("title") or ""),
            str(c.get("status")),
            _hms(c.get("duration_s")),
            str(c.get("output") or ""),
        )
        for c in chapters[:limit]
    ]
    table = _table(("id", "title", "status", "duration", "output"), rows,
                   align="|---|---|---|---:|---|")
    text = "### Chapters\n\n" + table
    if len(chapters) > limit:
        text += f"\n\n… and {len(chapters) - limit} more chapters: see report.json."
    return text


def _failures(failed: list[dict[str, Any]], limit: int) -> str:
    items = [_failure_item(c) for c in failed[:limit]]
    if len(failed) > limit:
        items.append(f"- … and {len(failed) - limit} more: see report.json")
    return "### Failures\n\n" + "\n".join(items)


def _quality_flags(flags: list[dict[str, Any]], limit: int) -> str:
    items = []
    for flag in flags[:limit]:
        where = f"{flag.get('file')}:{flag.get('file_line')}"
        rules = ", ".join(str(r) for r in flag.get("rules") or [])
        items.append(
            f"- **{_inline(str(flag.get('chapter')))}** line `{_code_span(str(flag.get('line')))}`"
            f" (`{_code_span(where)}`): {_inline(rules)}"
        )
    if len(flags) > limit:
        items.append(f"- … and {len(flags) - limit} more: see report.json")
    return "### Quality flags (the best answer was kept)\n\n" + "\n".join(items)


def _failure_item(chapter: dict[str, Any]) -> str:
    error = chapter.get("error") or {}
    where = f" at line `{_code_span(str(error['line']))}`" if error.get("line") else ""
    return f"- **{_inline(str(chapter.get('id')))}**{where}: {_problem(error)}"


def _fit_overflows(chapters: list[dict[str, Any]], limit: int) -> str | None:
    """Dubbing: the lines still longer than their cue (report.json's dubbing.overflows)."""
    found = [
        (str(c.get("id")), o)
        for c in chapters
        for o in ((c.get("dubbing") or {}).get("overflows") or [])
    ]
    if not found:
        return None
    rows = [
        (cid, str(o.get("line")), f"{o.get('slot_s')} s", f"{o.get('audio_s')} s",
         f"{o.get('overflow_s')} s")
        for cid, o in found[:limit]
    ]
    text = f"### Lines longer than their cue ({len(found)})\n\n" + _table(
        ("chapter", "line", "slot", "audio", "overflow"), rows, align="|---|---|---:|---:|---:|"
    )
    if len(found) > limit:
        text += f"\n\n… and {len(found) - limit} more: see report.json."
    return text


def _run_error(error: dict[str, Any]) -> str:
    return f"**The run was stopped:** {_problem(error)}"


def _problem(error: dict[str, Any]) -> str:
    text = f"code {_inline(str(error.get('code')))}: {_inline(str(error.get('message')))}"
    if error.get("logid"):
        text += f" (logid `{_code_span(str(error['logid']))}`)"
    return text


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], *, align: str) -> str:
    lines = ["| " + " | ".join(header) + " |", align]
    lines.extend("| " + " | ".join(_cell(v) for v in row) + " |" for row in rows)
    return "\n".join(lines)


def _cell(text: str) -> str:
    """A table cell: a ``|`` would end the cell and a newline the row."""
    return _inline(text).replace("|", "\\|")


def _inline(text: str) -> str:
    # Titles and messages come from manifests and servers: HTML and Markdown in them must
    # stay text, and a newline must not end a table row or a list item.
    escaped = _MARKDOWN.sub(r"\\\g<0>", html.escape(text, quote=False))
    return "<br>".join(line.strip() for line in escaped.splitlines()) if escaped else ""


def _code_span(text: str) -> str:
    return " ".join(text.replace("`", "'").split())


def _hms(seconds: object) -> str:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "-"
    if not math.isfinite(seconds) or seconds < 0:
        return "-"
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _count(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "-"
