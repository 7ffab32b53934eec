"""Issue 8 end to end: shards cover a job exactly once, merge back, a budget is never crossed,
and an unchanged job costs nothing the second time. Driven through the CLI as a CI job is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import TOKEN, cli_env, read_report, run_cli, texts, write_job

from pipeline.cli import main
from pipeline.localserver import LocalServer, ServerConfig

CHAPTER_IDS = [f"ch{i:02d}" for i in range(1, 8)]


@pytest.fixture
def seven_chapters(tmp_path: Path) -> Path:
    chapters = {cid: texts(2, prefix=cid) for cid in CHAPTER_IDS}
    return write_job(tmp_path, chapters)


def _planned_ids(job: Path, shard: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    assert main(["plan", str(job), "--json", "--shard", shard, "--local"], environ={}) == 0
    return [c["id"] for c in json.loads(capsys.readouterr().out)["chapters"]]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_the_shards_cover_every_chapter_exactly_once(
    seven_chapters: Path, n: int, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[str] = []
    for k in range(1, n + 1):
        seen += _planned_ids(seven_chapters, f"{k}/{n}", capsys)
    assert sorted(seen) == sorted(CHAPTER_IDS)
    assert len(seen) == len(CHAPTER_IDS)


def test_a_chapter_keeps_its_shard_when_chapters_are_appended(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = write_job(tmp_path, {cid: texts(1, cid) for cid in CHAPTER_IDS}, name="a.yaml")
    more = CHAPTER_IDS + ["ch08", "ch09", "ch10"]
    after = write_job(tmp_path, {cid: texts(1, cid) for cid in more}, name="b.yaml")
    for k in (1, 2, 3):
        old = _planned_ids(before, f"{k}/3", capsys)
        new = _planned_ids(after, f"{k}/3", capsys)
        assert new[: len(old)] == old


def test_shard_runs_merge_into_one_report_in_job_order(
    seven_chapters: Path, tmp_path: Path
) -> None:
    reports = []
    for k in (1, 2, 3):
        out = tmp_path / f"shard{k}"
        done = run_cli(
            "run", seven_chapters, "--local", "--engine", "tone", "--shard", f"{k}/3",
            "-o", out, "--progress", "none",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        reports.append(out / "report.json")
    merged = tmp_path / "merged.json"
    done = run_cli("merge-reports", *reports, "-o", merged, "--junit", tmp_path / "junit.xml")
    assert done.returncode == 0, done.stderr
    data = json.loads(merged.read_text(encoding="utf-8"))
    assert [c["id"] for c in data["chapters"]] == CHAPTER_IDS
    assert data["status"] == "ok"
    assert data["totals"]["chunks"] == 2 * len(CHAPTER_IDS)
    assert (tmp_path / "junit.xml").read_text(encoding="utf-8").count("<testcase") == 7


@pytest.fixture
def coze_server() -> LocalServer:
    with _server() as server:
        yield server  # type: ignore[misc]


def _server():  # type: ignore[no-untyped-def]
    from pipeline.localserver import serve_in_thread

    return serve_in_thread(ServerConfig(engine="tone"))


def _run(job: Path, out: Path, server: LocalServer, *extra: str):  # type: ignore[no-untyped-def]
    return run_cli(
        "run", job, "-o", out, "--base-url", server.base_url, "--progress", "none", *extra,
        env=cli_env(COZE_API_TOKEN=TOKEN),
    )  # fmt: skip


def test_over_budget_refuses_to_start_and_sends_nothing(
    seven_chapters: Path, tmp_path: Path, coze_server: LocalServer
) -> None:
    characters = sum(len(t) for cid in CHAPTER_IDS for t in texts(2, prefix=cid))
    done = _run(seven_chapters, tmp_path / "out", coze_server,
                "--budget-characters", str(characters - 1))  # fmt: skip
    assert done.returncode == 2
    assert f"would bill {characters} characters" in done.stderr
    assert coze_server.stats.requests == 0


def test_cache_hits_do_not_count_against_the_budget(
    seven_chapters: Path, tmp_path: Path, coze_server: LocalServer
) -> None:
    out = tmp_path / "out"
    assert _run(seven_chapters, out, coze_server).returncode == 0
    sent = coze_server.stats.requests
    again = _run(seven_chapters, out, coze_server, "--budget-characters", "0")
    assert again.returncode == 0, again.stderr
    assert coze_server.stats.requests == sent


def test_the_budget_is_never_crossed_during_the_run(
    seven_chapters: Path, tmp_path: Path, coze_server: LocalServer
) -> None:
    characters = sum(len(t) for cid in CHAPTER_IDS for t in texts(2, prefix=cid))
    # Answers that come back as audio but do not check out are billed and retried: the
    # budget that covered the job exactly cannot cover the retries too.
    coze_server.queue_faults(["bad_audio", "bad_audio"])
    out = tmp_path / "out"
    done = _run(seven_chapters, out, coze_server, "--budget-characters", str(characters),
                "--concurrency", "2")  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "budget" in done.stderr
    report = read_report(out)
    assert report["status"] == "aborted"
    assert report["error"]["code"] == -6
    assert report["totals"]["billed_characters"] <= characters
    written = [c for c in report["chapters"] if c["status"] == "ok"]
    assert written, "chapters finished before the stop are kept"
    # The next run, with the budget it needs, resumes and sends only what is missing.
    before = coze_server.stats.requests
    resumed = _run(seven_chapters, out, coze_server)
    assert resumed.returncode == 0, resumed.stderr
    assert coze_server.stats.requests - before == read_report(out)["totals"]["requests"]
    assert read_report(out)["totals"]["cache_hits"] > 0


def test_an_unchanged_job_run_again_sends_and_bills_nothing(
    seven_chapters: Path, tmp_path: Path, coze_server: LocalServer
) -> None:
    out = tmp_path / "out"
    assert _run(seven_chapters, out, coze_server).returncode == 0
    sent = coze_server.stats.requests
    assert _run(seven_chapters, out, coze_server).returncode == 0
    assert coze_server.stats.requests == sent
    totals = read_report(out)["totals"]
    assert totals["requests"] == 0
    assert totals["billed_characters"] == 0
    assert totals["cache_hits"] == totals["chunks"] == 14


def test_plan_json_counts_what_a_run_would_bill(
    seven_chapters: Path, tmp_path: Path, coze_server: LocalServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    plan_args = ["plan", str(seven_chapters), "--json", "-o", str(out),
                 "--base-url", coze_server.base_url]  # fmt: skip
    assert main(plan_args, environ={}) == 0
    before = json.loads(capsys.readouterr().out)["totals"]
    assert before["billable_characters"] == before["characters"]
    assert before["cache_hits"] == 0
    assert _run(seven_chapters, out, coze_server).returncode == 0
    assert main(plan_args, environ={}) == 0
    after = json.loads(capsys.readouterr().out)["totals"]
    assert after["billable_characters"] == 0
    assert after["cache_hits"] == after["chunks"]
