"""The Markdown run summary (--summary, $GITHUB_STEP_SUMMARY)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.report import ChapterError, ChapterReport, RunReport, Totals
from pipeline.summary import append_summary, markdown_summary

START = datetime(2026, 11, 23, 3, 17, 0, tzinfo=UTC)


def _report(
    status: str = "partial",
    chapters: list[ChapterReport] | None = None,
    error: ChapterError | None = None,
    elapsed: float = 3725.4,
    **extra: Any,
) -> dict[str, Any]:
    if chapters is None:
        chapters = [
            ChapterReport("ch01", "One", "ok", "ch01.mp3", 4000.6, 2, 3),
            ChapterReport("ch02", None, "failed", None, None, 1, 1,
                          ChapterError(4000, "speed is out of range", "LOG123", "l012")),
            ChapterReport("ch03", "Three", "pending", None, None, 1, 1),
        ]
    return RunReport(
        status=status,
        started_at=START,
        finished_at=START + timedelta(seconds=elapsed),
        totals=Totals(chapters=len(chapters), characters=30000, requests=150, retries=10,
                      cache_hits=4, billed_characters=30500, audio_seconds=4000.6),
        chapters=chapters,
        error=error,
        extra=dict(extra),
    ).to_json()


def _rows(text: str) -> dict[str, str]:
    """First table's rows as {label: value}."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        if line.startswith("| ") and len(cells) == 2:
            rows[cells[0]] = cells[1]
    return rows


def test_title_and_totals() -> None:
    text = markdown_summary(_report(source="jobs/sample.yaml", shard={"k": 2, "n": 3}))
    assert text.splitlines()[0] == "## tts-pipeline: partial — jobs/sample.yaml (shard 2/3)"
    rows = _rows(text)
    assert rows["chapters ok"] == "1 of 3"
    assert rows["chapters failed"] == "1"
    assert rows["chapters not run"] == "1"
    assert rows["audio"] == "1:06:41"
    assert rows["characters"] == "30,000"
    assert rows["billed characters"] == "30,500"
    assert rows["requests"] == "150"
    assert rows["retries"] == "10"
    assert rows["cache hits"] == "4"
    assert rows["elapsed"] == "1:02:05"


def test_chapters_table_and_failures() -> None:
    text = markdown_summary(_report())
    assert "| ch01 | One | ok | 1:06:41 | ch01.mp3 |" in text
    assert "| ch02 |  | failed | - |  |" in text
    assert "| ch03 | Three | pending | - |  |" in text
    assert ("- **ch02** at line `l012`: code 4000: speed is out of range (logid `LOG123`)"
            in text)


def test_an_ok_run_has_no_failure_section_and_no_not_run_row() -> None:
    chapters = [ChapterReport("ch01", "One", "ok", "ch01.mp3", 1.0, 1, 1)]
    text = markdown_summary(_report("ok", chapters=chapters))
    assert text.startswith("## tts-pipeline: ok\n")
    assert "Failures" not in text and "not run" not in text
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_a_fatal_stop_is_shown() -> None:
    stop = ChapterError(4100, "token refused", "LOGX", None)
    text = markdown_summary(_report("aborted", error=stop))
    assert "**The run was stopped:** code 4100: token refused (logid `LOGX`)" in text


def test_table_cells_are_escaped() -> None:
    chapters = [
        ChapterReport("a|b", "pipes | and\nnewlines <b>html</b> *stars*", "failed", None,
                      None, 1, 1, ChapterError(5000, "two\nlines | pipe", "lo`g", None)),
    ]
    text = markdown_summary(_report("failed", chapters=chapters))
    row = next(line for line in text.splitlines() if line.startswith("| a\\|b"))
    assert row == (
        r"| a\|b | pipes \| and<br>newlines &lt;b&gt;html&lt;/b&gt; \*stars\* | failed | - |  |"
    )
    # A row keeps its five cells: every unescaped | is a cell border.
    assert row.replace("\\|", "").count("|") == 6
    item = next(line for line in text.splitlines() if line.startswith("- "))
    # Outside a table a | is only text; a newline would still end the list item.
    assert item == "- **a|b**: code 5000: two<br>lines | pipe (logid `lo'g`)"


def test_long_jobs_are_capped() -> None:
    chapters = [
        ChapterReport(f"c{i}", None, "failed", None, None, 1, 1,
                      ChapterError(4000, "no", None, None))
        for i in range(30)
    ]
    text = markdown_summary(_report("failed", chapters=chapters), max_chapters=10,
                            max_failures=5)
    assert "… and 20 more chapters: see report.json." in text
    assert "- … and 25 more: see report.json" in text
    assert len(re.findall(r"^\| c\d+ \|", text, re.MULTILINE)) == 10


def test_merged_report_shows_missing_shards() -> None:
    text = markdown_summary(_report(merged={"reports": 2, "shards": 3, "missing_shards": [2]}))
    assert "(2 reports merged)" in text.splitlines()[0]
    assert _rows(text)["missing shards"] == "2"


def test_append_summary_appends(tmp_path: Path) -> None:
    path = tmp_path / "step_summary.md"
    path.write_text("# earlier step\n", encoding="utf-8")
    append_summary(path, "first")
    append_summary(path, "second\n")
    assert path.read_text(encoding="utf-8") == "# earlier step\nfirst\nsecond\n"
