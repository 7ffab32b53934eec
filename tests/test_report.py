"""report.json shape, exit codes and atomic writes."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.fileio import atomic_path, atomic_write_text
from pipeline.report import ChapterError, ChapterReport, RunReport, Totals, write_report


def _report(status: str) -> RunReport:
    start = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
    return RunReport(
        status=status,
        started_at=start,
        finished_at=start + timedelta(seconds=12.3),
        totals=Totals(chapters=2, lines=3, chunks=4, characters=50, bytes=120, requests=5,
                      retries=1, cache_hits=0, billed_characters=55, audio_seconds=9.5),
        chapters=[
            ChapterReport("ch01", "One", "ok", "ch01.mp3", 4.25, 2, 3),
            ChapterReport("ch02", None, "failed", None, None, 1, 1,
                          ChapterError(4000, "speed is out of range", "LOG", "l1")),
        ],
    )


def test_report_has_the_interface_fields(tmp_path: Path) -> None:
    path = write_report(tmp_path, _report("partial"))
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["status"] == "partial"
    assert data["started_at"] == "2026-11-23T10:00:00Z"
    assert data["elapsed_s"] == 12.3
    assert set(data["totals"]) == {
        "chapters", "lines", "chunks", "characters", "bytes", "requests", "retries",
        "cache_hits", "billed_characters", "audio_seconds",
    }
    ok, failed = data["chapters"]
    assert set(ok) >= {"id", "title", "status", "output", "duration_s", "lines", "chunks", "error"}
    assert ok["error"] is None
    assert failed["error"] == {"code": 4000, "message": "speed is out of range", "logid": "LOG",
                               "line": "l1"}


@pytest.mark.parametrize(
    ("status", "code"),
    [("ok", 0), ("partial", 1), ("failed", 1), ("aborted", 3), ("interrupted", 130)],
)
def test_exit_codes(status: str, code: int) -> None:
    assert _report(status).exit_code == code


def test_atomic_write_leaves_old_file_on_error(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
