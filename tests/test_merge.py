"""merge-reports: the shard reports of a job joined into one report."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import helpers
import pytest

from pipeline.errors import ConfigError
from pipeline.junit import junit_xml
from pipeline.merge import MAX_REPORT_BYTES, load_report, merge_reports, write_report_json
from pipeline.report import ChapterError, ChapterReport, RunReport, Totals, write_report
from pipeline.sharding import Shard, select_shard
from pipeline.summary import markdown_summary

START = datetime(2026, 11, 23, 3, 17, 0, tzinfo=UTC)
IDS = [f"ch{i:02d}" for i in range(1, 8)]


def _chapter(cid: str, status: str = "ok") -> ChapterReport:
    if status == "failed":
        return ChapterReport(cid, None, "failed", None, None, 1, 1,
                             ChapterError(4000, "bad speed", "LOG-" + cid, "l1"))
    if status == "pending":
        return ChapterReport(cid, None, "pending", None, None, 1, 1)
    return ChapterReport(cid, cid.upper(), "ok", f"{cid}.mp3", 1.5, 2, 2)


def _report(
    chapters: list[ChapterReport],
    status: str = "ok",
    *,
    start_s: float = 0.0,
    elapsed: float = 10.0,
    error: ChapterError | None = None,
    **extra: Any,
) -> dict[str, Any]:
    started = START + timedelta(seconds=start_s)
    return RunReport(
        status=status,
        started_at=started,
        finished_at=started + timedelta(seconds=elapsed),
        totals=Totals(
            chapters=len(chapters), lines=2 * len(chapters), chunks=3 * len(chapters),
            characters=100 * len(chapters), requests=3 * len(chapters), retries=1,
            billed_characters=110 * len(chapters), audio_seconds=1.5 * len(chapters),
        ),
        chapters=chapters,
        error=error,
        extra=dict(extra),
    ).to_json()


def _shard_reports(n: int, failed: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    reports = []
    for k in range(1, n + 1):
        shard = Shard(k, n)
        mine = [IDS[i] for i in select_shard(IDS, shard)]
        chapters = [_chapter(c, "failed" if c in failed else "ok") for c in mine]
        status = "partial" if any(c in failed for c in mine) else "ok"
        reports.append(_report(chapters, status, start_s=k, elapsed=10.0 * k,
                               shard=shard.to_json(), source="jobs/sample.yaml"))
    return reports


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_shards_merge_back_into_job_order(n: int) -> None:
    reports = _shard_reports(n)
    merged = merge_reports(list(reversed(reports)))  # artifact download order is arbitrary
    assert [c["id"] for c in merged["chapters"]] == IDS
    assert merged["status"] == "ok"
    assert merged["totals"]["chapters"] == len(IDS)
    assert merged["totals"]["billed_characters"] == 110 * len(IDS)
    assert merged["totals"]["retries"] == n
    assert merged["totals"]["audio_seconds"] == pytest.approx(1.5 * len(IDS))
    assert merged["source"] == "jobs/sample.yaml"
    assert "shard" not in merged
    assert merged["merged"] == {
        "reports": n, "machine_s": 10.0 * n * (n + 1) / 2, "shards": n, "missing_shards": [],
    }


def test_times_parallel_elapsed_and_machine_time() -> None:
    merged = merge_reports(_shard_reports(3))
    assert merged["started_at"] == "2026-11-23T03:17:01Z"  # shard 1 started first
    assert merged["finished_at"] == "2026-11-23T03:17:33Z"  # shard 3: 3 s + 30 s
    assert merged["elapsed_s"] == 30.0  # the slowest shard, not the sum
    assert merged["merged"]["machine_s"] == 60.0


def test_failures_on_one_shard_make_the_job_partial() -> None:
    merged = merge_reports(_shard_reports(3, failed=frozenset({"ch02"})))
    assert merged["status"] == "partial"
    failed = [c for c in merged["chapters"] if c["status"] == "failed"]
    assert [c["id"] for c in failed] == ["ch02"]
    assert failed[0]["error"]["logid"] == "LOG-ch02"


def test_all_failed_is_failed_and_ok_plus_failed_is_partial() -> None:
    a = _report([_chapter("a", "failed")], "failed")
    b = _report([_chapter("b", "failed")], "failed")
    c = _report([_chapter("c")], "ok")
    assert merge_reports([a, b])["status"] == "failed"
    assert merge_reports([a, c])["status"] == "partial"  # neither shard said "partial"
    assert merge_reports([c])["status"] == "ok"


@pytest.mark.parametrize("worst", ["aborted", "interrupted"])
def test_a_stopped_shard_sets_the_status(worst: str) -> None:
    stop = ChapterError(4100, "token refused", "LOGX", None) if worst == "aborted" else None
    stopped = _report([_chapter("b", "pending")], worst, error=stop)
    merged = merge_reports([_report([_chapter("a")]), stopped,
                            _report([_chapter("c", "failed")], "failed")])
    assert merged["status"] == worst
    assert merged.get("error") == (None if stop is None else
                                   {"code": 4100, "message": "token refused", "logid": "LOGX",
                                    "line": None})


def test_aborted_beats_interrupted() -> None:
    merged = merge_reports([_report([_chapter("a")], "interrupted"),
                            _report([_chapter("b")], "aborted")])
    assert merged["status"] == "aborted"


def test_a_missing_shard_is_reported_and_not_ok() -> None:
    reports = _shard_reports(3)
    merged = merge_reports([reports[0], reports[2]])
    assert merged["merged"]["missing_shards"] == [2]
    assert merged["status"] == "partial"
    assert [c["id"] for c in merged["chapters"]] == ["ch01", "ch03", "ch04", "ch06", "ch07"]


def test_duplicate_chapters_are_named() -> None:
    a = _report([_chapter("ch01"), _chapter("ch02")])
    b = _report([_chapter("ch02"), _chapter("ch03"), _chapter("ch01")])
    with pytest.raises(ConfigError, match="more than one report: ch01, ch02"):
        merge_reports([a, b])


def test_without_shard_fields_the_given_order_is_kept() -> None:
    merged = merge_reports([_report([_chapter("z")]), _report([_chapter("a")])])
    assert [c["id"] for c in merged["chapters"]] == ["z", "a"]
    assert "shards" not in merged["merged"]


@pytest.mark.parametrize(
    ("shards", "message"),
    [
        ([{"k": 1, "n": 2}, {"k": 2, "n": 3}], "different numbers of shards"),
        ([{"k": 1, "n": 2}, {"k": 1, "n": 2}], "shard given twice: 1/2"),
        ([{"k": 1, "n": 2}, None], "some reports carry a shard"),
        ([{"k": 3, "n": 2}, {"k": 1, "n": 2}], "shard number must be 1 to 2"),
    ],
)
def test_shard_fields_that_do_not_fit_are_refused(
    shards: list[dict[str, int] | None], message: str
) -> None:
    reports = []
    for i, shard in enumerate(shards):
        extra = {} if shard is None else {"shard": shard}
        reports.append(_report([_chapter(f"c{i}")], **extra))
    with pytest.raises(ConfigError, match=message):
        merge_reports(reports)


def test_reports_of_two_jobs_are_refused_and_other_fields_kept_if_agreed() -> None:
    a = _report([_chapter("a")], source="jobs/a.yaml")
    b = _report([_chapter("b")], source="jobs/b.yaml")
    with pytest.raises(ConfigError, match="different jobs"):
        merge_reports([a, b])
    c = _report([_chapter("c")], budget={"characters": 100}, host="h1")
    d = _report([_chapter("d")], budget={"characters": 100}, host="h2")
    merged = merge_reports([c, d])
    assert merged["budget"] == {"characters": 100}
    assert "host" not in merged


def test_no_reports_and_unknown_status_are_errors() -> None:
    with pytest.raises(ConfigError, match="no reports"):
        merge_reports([])
    weird = _report([_chapter("a")])
    weird["status"] = "exploded"
    with pytest.raises(ConfigError, match="unknown report status 'exploded'"):
        merge_reports([weird])


def test_a_merged_report_feeds_junit_and_summary() -> None:
    merged = merge_reports(_shard_reports(3, failed=frozenset({"ch05"})))
    document = junit_xml(merged)
    assert document.count("<testcase ") == len(IDS)
    assert 'failures="1"' in document
    summary = markdown_summary(merged)
    assert "3 reports merged" in summary and "**ch05**" in summary


def test_load_report_round_trip(tmp_path: Path) -> None:
    run = RunReport("ok", START, START + timedelta(seconds=1), Totals(), [_chapter("a")])
    path = write_report(tmp_path, run)
    assert load_report(path) == json.loads(path.read_text(encoding="utf-8"))
    merged_path = tmp_path / "merged" / "report.json"
    write_report_json(merged_path, merge_reports([load_report(path)]))
    assert load_report(merged_path)["chapters"][0]["id"] == "a"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"status": "ok",', r"bad\.json:1: not valid JSON"),
        ("[1, 2]", "the top level is not an object"),
        ('{"status": "meh", "totals": {}, "chapters": []}', "status must be one of"),
        ('{"status": "ok", "chapters": []}', "no totals"),
        ('{"status": "ok", "totals": {}, "chapters": [{"title": "x"}]}', "a chapter has no id"),
        ('{"status": "ok", "totals": {}, "chapters": []}', "no started_at"),
        # Found by the merge fuzzer: junit read an error given as a list as an object.
        ('{"status": "ok", "totals": {}, "chapters": [], "error": [null]}', "an error is neither"),
        ('{"status": "ok", "totals": {}, "chapters": [{"id": "a", "error": 3}]}', "an error is"),
    ],
)
def test_load_report_explains_bad_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_report(path)


def test_load_report_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the report"):
        load_report(tmp_path / "nope.json")


# -- hostile report files (issue 12): one line naming the file, exit 2, never a traceback ----

_GOOD = '{"status": "ok", "totals": {}, "chapters": [], ' \
        '"started_at": "2026-11-23T03:17:00Z", "finished_at": "2026-11-23T03:18:00Z"'


def _with(extra: str) -> str:
    return _GOOD + extra + "}"


HOSTILE_REPORTS = {
    "deep array": ("[" * 100_000 + "]" * 100_000, "nested too deeply|nested deeper"),
    "deep object": ('{"a":' * 100_000 + "1" + "}" * 100_000, "nested too deeply|nested"),
    "deep but parseable": (_with(', "source": ' + "[" * 500 + "]" * 500), "nested deeper than"),
    "NaN": (_with(', "elapsed_s": NaN'), "NaN is not a number JSON allows"),
    "1e400": (_with(', "elapsed_s": 1e400'), "out of range"),
    "huge integer": (_with(', "elapsed_s": ' + "9" * 5000), "not a tts-pipeline report"),
    "bad time": (_with("").replace("2026-11-23T03:18:00Z", "yesterday"), "not an ISO 8601"),
    "time overflowing UTC": (
        _with("").replace("2026-11-23T03:17:00Z", "0001-01-01T00:00:00+05:00"),
        "not an ISO 8601"),
    "bad shard": (_with(', "shard": {"k": "1", "n": [' + "0," * 5000 + '0]}'),
                  r"shard must be .*\.\.\.$"),
    "totals not numbers": (_with("").replace('"totals": {}', '"totals": {"x": "1"}'),
                           "totals value is not a number"),
    "huge status": ('{"status": "' + "x" * 100_000 + '"}', r"status must be .*\.\.\.$"),
    "control characters": ('{"status": "\\u001b[2J\\n"}', r"status must be .*\\x1b\[2J"),
    "not UTF-8": ("\udcff", "not UTF-8 text"),
    "empty": ("", "not valid JSON"),
}


@pytest.mark.parametrize("name", list(HOSTILE_REPORTS))
def test_hostile_report_is_one_line_naming_the_file(tmp_path: Path, name: str) -> None:
    content, message = HOSTILE_REPORTS[name]
    path = tmp_path / "hostile.json"
    path.write_bytes(content.encode("utf-8", errors="surrogateescape"))
    with pytest.raises(ConfigError, match=message) as caught:
        load_report(path)
    text = str(caught.value)
    assert text.startswith(str(path)) and "\n" not in text and len(text) < 300
    assert caught.value.__cause__ is None


def test_report_over_the_size_bound_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    with path.open("wb") as f:
        f.truncate(MAX_REPORT_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(ConfigError, match="larger than 64 MiB"):
        load_report(path)


def test_fifo_and_directory_are_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="fifo.json: not a regular file"):
        load_report(fifo)
    with pytest.raises(ConfigError, match="not a regular file|cannot read"):
        load_report(tmp_path)


def test_cli_merge_of_hostile_reports_exits_2_without_traceback(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    write_report_json(good, _report([_chapter("a")]))
    for name in ("deep array", "huge integer", "not UTF-8"):
        bad = tmp_path / "bad.json"
        bad.write_bytes(HOSTILE_REPORTS[name][0].encode("utf-8", errors="surrogateescape"))
        done = subprocess.run(
            helpers.cli_command("merge-reports", good, bad, "-o", tmp_path / "m.json"),
            env=helpers.cli_env(), capture_output=True, text=True, timeout=60, check=False,
        )
        assert done.returncode == 2, (name, done.stderr)
        assert "Traceback" not in done.stderr and str(bad) in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert not (tmp_path / "m.json").exists()
