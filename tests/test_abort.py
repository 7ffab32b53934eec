"""Issue 7.6: the abort paths. A refused token stops the run at once; the daily limit stops
it cleanly, and the next day's run resumes without buying anything twice."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from torture.harness import chapter_files, cli_env, run_args, run_cli, write_job

from pipeline.localserver import LocalServer

CONCURRENCY = 4
SECRET = "tok-abort-SECRET-5f1c"


def _report(out: Path) -> dict[str, object]:
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _exit_within_a_second_of_the_first_request(
    server: LocalServer, job: Path, out: Path, token: str
) -> subprocess.CompletedProcess[str]:
    args = run_args(job, out, server.base_url, "--concurrency", str(CONCURRENCY), "--qps", "1000")
    done = run_cli(args, cli_env(token), timeout=60)
    exited = time.monotonic()
    arrivals = server.stats.arrivals
    assert arrivals, done.stderr
    took = exited - arrivals[0]
    assert took < 1.0, f"exited {took:.2f} s after the first request"
    assert done.returncode == 3, done.stderr
    assert server.stats.requests <= CONCURRENCY
    port_host = server.base_url.removeprefix("http://")
    assert port_host in done.stderr and "COZE_API_TOKEN" in done.stderr, done.stderr
    assert "4100" in done.stderr
    report = _report(out)
    assert report["status"] == "aborted"
    assert isinstance(report["error"], dict) and report["error"]["code"] == 4100
    return done


def test_refused_token_exits_3_within_a_second_naming_host_and_variable(
    tmp_path: Path, make_server: Callable[..., LocalServer]
) -> None:
    server = make_server(token="tok-the-right-one")
    job = write_job(tmp_path, 200)
    done = _exit_within_a_second_of_the_first_request(server, job, tmp_path / "out", SECRET)
    assert SECRET not in done.stderr + done.stdout
    assert SECRET not in (tmp_path / "out" / "report.json").read_text(encoding="utf-8")


def test_4100_while_requests_are_in_flight_cancels_them_at_once(
    tmp_path: Path, make_server: Callable[..., LocalServer]
) -> None:
    # The first request is refused; the others would take 5 s each: the run must not wait.
    server = make_server(latency_ms=5000)
    server.queue_faults([{"code": 4100, "http_status": 401}])
    job = write_job(tmp_path, 200)
    _exit_within_a_second_of_the_first_request(server, job, tmp_path / "out", SECRET)
    assert server.stats.audio_answers == 0


def test_daily_limit_aborts_cleanly_and_the_next_day_resumes(
    tmp_path: Path, make_server: Callable[..., LocalServer]
) -> None:
    server = make_server(latency_ms=5)
    job = write_job(tmp_path, 120, per_chapter=20)
    out = tmp_path / "out"
    args = run_args(job, out, server.base_url, "--concurrency", str(CONCURRENCY), "--qps", "1000")
    env = cli_env(SECRET)
    with subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as process:
        deadline = time.monotonic() + 60
        while server.stats.audio_answers < 50 and time.monotonic() < deadline:
            time.sleep(0.002)
        # The limit is reached: from now on, every request of the day is refused.
        server.queue_faults([{"code": 4008}] * 200)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 3, stderr
    assert "4008" in stderr and "tomorrow" in stderr, stderr
    report = _report(out)
    assert report["status"] == "aborted"
    assert isinstance(report["error"], dict) and report["error"]["code"] == 4008
    chapters = report["chapters"]
    assert isinstance(chapters, list)
    written = {c["output"] for c in chapters if c["status"] == "ok"}
    assert written and written == set(chapter_files(out)), "an ok chapter without its file"
    assert {c["status"] for c in chapters} <= {"ok", "pending"}
    day_one = server.stats.by_input
    refused = server.stats.faults["code:4008"]
    assert 1 <= refused <= CONCURRENCY, "the run kept sending after the daily limit"

    server.reset()  # midnight: the limit and the counters start again
    again = run_cli(args, env)
    assert again.returncode == 0, again.stderr
    assert _report(out)["status"] == "ok"
    day_two = server.stats.by_input
    # Only what was in flight when the limit hit can have been bought on both days.
    assert len(set(day_one) & set(day_two)) <= CONCURRENCY
    assert len(set(day_one) | set(day_two)) == 120
    assert len(chapter_files(out)) == 6
