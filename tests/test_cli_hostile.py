"""The command line against hostile input: every case is one clear line and an exit code.

Bad base URLs, tokens, option values and output paths (issue 12). Commands that send nothing
run in-process through ``main``; the paid-run cases run a subprocess against a tone server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import REPO, cli_env, read_report, run_cli, texts, write_job

from pipeline.cli import main
from pipeline.localserver import LocalServer
from pipeline.settings import RANGES

MakeServer = Callable[..., LocalServer]
CANARY = "pat_CANARYcli0123456789abcdef"


def call(capsys: pytest.CaptureFixture[str], *argv: str | Path,
         env: dict[str, str] | None = None) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in argv], environ=env or {})
    except SystemExit as e:  # argparse's own errors
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def one_clear_line(err: str) -> None:
    assert "Traceback" not in err
    assert CANARY not in err


# --- base URL -----------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "http://[::1", "http://[zz::1]:80", "http://h:99999", "http://h:0", "ftp://h",
    "http://user:pw@h", "http://", "http://exa mple.com", "http://h:-1",
])
def test_bad_base_url_is_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], url: str
                                               ) -> None:
    code, _, err = call(capsys, "voices", "--base-url", url, env={"COZE_API_TOKEN": CANARY})
    assert code == 2
    one_clear_line(err)
    assert err.startswith("tts-pipeline: error: --base-url:")
    assert len(err.strip().splitlines()) == 1


def test_bad_base_url_in_the_environment_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"COZE_API_TOKEN": CANARY, "COZE_API_BASE": "http://[::1"}
    code, _, err = call(capsys, "voices", env=env)
    assert code == 2
    assert "$COZE_API_BASE" in err


# --- token --------------------------------------------------------------------------------


def test_token_with_a_trailing_newline_is_stripped(
    make_server: MakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server = make_server(token=CANARY)
    code, out, err = call(capsys, "voices", "--base-url", server.base_url, "--json",
                          env={"COZE_API_TOKEN": CANARY + "\n"})
    assert code == 0, err
    assert json.loads(out)


@pytest.mark.parametrize("bad", [CANARY[:10] + " " + CANARY[10:], CANARY + "\x1b[2J",
                                 CANARY + "é", "Bearer " + CANARY])
def test_bad_token_is_exit_2_and_never_shown(capsys: pytest.CaptureFixture[str], bad: str
                                             ) -> None:
    code, out, err = call(capsys, "voices", env={"COZE_API_TOKEN": bad})
    assert code == 2
    assert "$COZE_API_TOKEN" in err
    for part in (CANARY, CANARY[:10], CANARY[10:]):
        assert part not in out + err


# --- numeric options ----------------------------------------------------------------------


@pytest.mark.parametrize(("option", "value"), [
    ("--concurrency", "1000000"), ("--concurrency", "0"), ("--qps", "1e-300"), ("--qps", "inf"),
    ("--qps", "nan"), ("--qps", "-1"), ("--retries", "101"), ("--retries", "-1"),
    ("--timeout", "0"), ("--timeout", "1e9"), ("--max-chunk-bytes", "1025"),
    ("--budget-characters", "-5"), ("--burst", "100000"), ("--qps", "\x1b[2J"),
    ("--concurrency", "9" * 5000),
])
def test_numeric_option_out_of_range_is_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, option: str, value: str
) -> None:
    job = write_job(tmp_path, {"a": texts(1)})
    code, _, err = call(capsys, "run", job, "--local", option, value)
    assert code == 2
    assert "Traceback" not in err and "\x1b" not in err
    assert f"argument {option}: must be" in err


@pytest.mark.parametrize(("option", "value"), [
    ("--port", "70000"), ("--latency-ms", "1e300"), ("--jitter", "2"), ("--fault-rate", "-0.1"),
    ("--max-in-flight", "0"), ("--seed", "-1"), ("--latency-per-byte-ms", "nan"),
])
def test_serve_local_knobs_out_of_range(capsys: pytest.CaptureFixture[str], option: str,
                                        value: str) -> None:
    code, _, err = call(capsys, "serve-local", option, value)
    assert code == 2
    assert f"argument {option}: must be" in err


def test_every_range_is_documented() -> None:
    doc = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    for name, allowed in RANGES.items():
        assert f"`{name}`" in doc and allowed.describe() in doc, name


# --- output paths -------------------------------------------------------------------------


def test_say_into_a_folder_is_exit_2_before_sending(
    make_server: MakeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = make_server()
    target = tmp_path / "taken.wav"
    target.mkdir()
    code, _, err = call(capsys, "say", "hello", "-o", target, "--voice", "v",
                        "--base-url", server.base_url, env={"COZE_API_TOKEN": CANARY})
    assert code == 2
    assert "it is a folder" in err
    assert target.is_dir()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_say_into_an_unwritable_folder_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    code, _, err = call(capsys, "say", "hello", "-o", locked / "a.wav", "--local",
                        "--engine", "tone")
    assert code == 2
    assert "cannot write in" in err


def test_say_into_a_folder_we_may_not_write_is_exit_2_even_as_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root may write anywhere, so the permission answer is the one the check sees."""
    import pipeline.cliguard

    monkeypatch.setattr(pipeline.cliguard.os, "access", lambda *_: False)
    code, _, err = call(capsys, "say", "hello", "-o", tmp_path / "a.wav", "--local",
                        "--engine", "tone")
    assert code == 2
    assert err.startswith("tts-pipeline: error: -o ") and "cannot write in" in err
    assert not (tmp_path / "a.wav").exists()


def test_say_where_a_file_is_in_place_of_a_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("x")
    code, _, err = call(capsys, "say", "hello", "-o", tmp_path / "file" / "a.wav", "--local",
                        "--engine", "tone")
    assert code == 2
    assert "a file is where a folder belongs" in err


def test_say_refuses_a_text_holding_the_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = call(capsys, "say", f"read {CANARY} aloud", "-o", tmp_path / "a.wav",
                          "--local", "--engine", "tone", env={"COZE_API_TOKEN": CANARY})
    assert code == 2
    assert CANARY not in out + err
    assert not (tmp_path / "a.wav").exists()


def test_bad_junit_path_is_refused_before_a_paid_run(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server()
    (tmp_path / "junit.xml").mkdir()
    result = run_cli("run", write_job(tmp_path, {"a": texts(2)}), "-o", tmp_path / "out",
                     "--base-url", server.base_url, "--junit", tmp_path / "junit.xml",
                     env=cli_env(COZE_API_TOKEN=CANARY))
    assert result.returncode == 2
    assert "--junit" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "report.json").exists()


def test_junit_that_fails_after_the_run_keeps_its_report(
    make_server: MakeServer, tmp_path: Path
) -> None:
    """The JUnit folder turns into a file while the run is on: the paid run's report stays."""
    server = make_server(latency_ms=300)
    reports = tmp_path / "reports"
    reports.mkdir()
    job = write_job(tmp_path, {"a": texts(2)})
    command = [sys.executable, "-m", "pipeline", "run", str(job), "-o", str(tmp_path / "out"),
               "--base-url", server.base_url, "--junit", str(reports / "j.xml"),
               "--progress", "none"]
    process = subprocess.Popen(command, env=cli_env(COZE_API_TOKEN=CANARY), cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_until(lambda: (tmp_path / "out").exists())
        reports.rmdir()
        reports.write_text("not a folder")
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 1
    assert "Traceback" not in err
    assert "the run's report is kept in" in err
    assert read_report(tmp_path / "out")["status"] == "ok"


def _wait_until(condition: Callable[[], bool]) -> None:
    import time

    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_step_summary_that_is_a_folder_is_refused_before_sending(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "summary").mkdir()
    job = write_job(tmp_path, {"a": texts(1)})
    code, _, err = call(capsys, "run", job, "--local", "--engine", "tone", "-o", tmp_path / "o",
                        env={"GITHUB_STEP_SUMMARY": str(tmp_path / "summary")})
    assert code == 2
    assert "$GITHUB_STEP_SUMMARY" in err


def test_summary_is_never_appended_through_a_link(tmp_path: Path) -> None:
    from pipeline.errors import StorageError
    from pipeline.summary import append_summary

    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / "summary.md").symlink_to(victim)
    with pytest.raises(StorageError):
        append_summary(tmp_path / "summary.md", "text")
    assert victim.read_text() == "keep"


def test_merge_reports_to_a_folder_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "r.json"
    report.write_text("{}")
    (tmp_path / "merged.json").mkdir()
    code, _, err = call(capsys, "merge-reports", report, "-o", tmp_path / "merged.json")
    assert code == 2
    assert err.startswith("tts-pipeline: error: -o: ")


# --- the terminal -------------------------------------------------------------------------


def test_voices_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    shell = (f"{sys.executable} -m pipeline voices --local --engine tone --json | head -c 1 "
             "> /dev/null; exit ${PIPESTATUS[0]}")
    result = subprocess.run(["bash", "-c", shell], env=cli_env(), cwd=REPO,
                            capture_output=True, text=True, timeout=60, check=False)
    assert "Traceback" not in result.stderr
    assert "BrokenPipe" not in result.stderr
    assert result.returncode in (0, 1)


def test_control_characters_in_names_are_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = call(capsys, "validate", tmp_path / "\x1b[2Jmissing\u202e.yaml")
    assert code == 2
    assert "\x1b" not in err and "\u202e" not in err


def test_run_into_a_closed_pipe_goes_on_and_writes_its_report(tmp_path: Path) -> None:
    job = write_job(tmp_path, {f"c{i}": texts(1, f"x{i}") for i in range(20)})
    shell = (f"{sys.executable} -m pipeline run {job} --local --engine tone -o {tmp_path}/o "
             "--progress jsonl | head -c 1 > /dev/null; exit ${PIPESTATUS[0]}")
    result = subprocess.run(["bash", "-c", shell], env=cli_env(), cwd=REPO,
                            capture_output=True, text=True, timeout=60, check=False)
    # The reader is gone, the run is not: it goes on quietly, writes every chapter and its
    # report, and exits with its own status.
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["status"] == "ok" and len(report["chapters"]) == 20
