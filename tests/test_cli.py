"""The command line as users and CI drive it: subprocesses of ``python -m pipeline``.

Runs go to a tone-engine server in this process's thread (``--base-url`` with a token in the
subprocess's environment: the real Coze path) or to the embedded one (``--local --engine
tone``). Commands that send nothing (plan, validate) run in-process through ``main``.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from audio.test_audio_support import decode
from helpers import (
    chunk_keys,
    cli_env,
    make_plan,
    read_report,
    run_cli,
    start_cli,
    texts,
    wait_for,
    write_job,
)

from pipeline.chunking import split_text
from pipeline.cli import main
from pipeline.localserver import LocalServer, tone_duration

MakeServer = Callable[..., LocalServer]
SECRET = "secret-XYZ"
SAY_PAUSE_S = 0.3  # the pause `say` puts after each paragraph


def coze_env(token: str = SECRET) -> dict[str, str]:
    return cli_env(COZE_API_TOKEN=token)


def small_job(tmp_path: Path, fmt: str = "wav") -> Path:
    return write_job(tmp_path, {"ch01": texts(3, "one"), "ch02": texts(2, "two")}, fmt=fmt)


# --- run: token, host, exit status ---------------------------------------------------------


def test_no_token_and_no_local_exits_2_before_any_request(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server()
    result = run_cli(
        "run", small_job(tmp_path), "-o", tmp_path / "out", "--base-url", server.base_url
    )
    assert result.returncode == 2
    assert "COZE_API_TOKEN" in result.stderr and "--local" in result.stderr
    assert server.stats.requests == 0
    assert not (tmp_path / "out").exists()


def test_a_run_with_a_token_never_prints_it(make_server: MakeServer, tmp_path: Path) -> None:
    server = make_server(token=SECRET)
    out = tmp_path / "out"
    result = run_cli(
        "run", small_job(tmp_path), "-o", out, "--base-url", server.base_url,
        "--progress", "jsonl", "--summary", env=coze_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report_text = (out / "report.json").read_text(encoding="utf-8")
    for text in (result.stdout, result.stderr, report_text):
        assert SECRET not in text
    assert json.loads(report_text)["status"] == "ok"
    assert server.stats.audio_answers == 5


def test_a_refused_token_stops_with_exit_3_and_says_which_host(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server(token="the-right-token")
    out = tmp_path / "out"
    started = time.monotonic()
    result = run_cli(
        "run", small_job(tmp_path), "-o", out, "--base-url", server.base_url, env=coze_env()
    )
    assert result.returncode == 3
    assert time.monotonic() - started < 30
    host = server.base_url.removeprefix("http://")
    assert host in result.stderr
    assert "4100" in result.stderr
    assert "a coze.cn token does not work on api.coze.com" in result.stderr
    assert SECRET not in result.stderr + result.stdout
    report = read_report(out)
    assert report["status"] == "aborted" and report["error"]["code"] == 4100
    assert server.stats.requests <= 4  # the first refusal stopped everything


def test_an_unknown_voice_exits_2_naming_the_file_line_before_sending(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server()
    job = write_job(
        tmp_path,
        {"good": texts(2), "bad": texts(2)},
        chapter_fields={"bad": {"voice_id": "no-such-voice"}},
    )
    out = tmp_path / "out"
    # Issue 14: the voice list is checked first, so an unknown voice is refused (exit 2, with
    # FILE:LINE) before anything is sent; the refusal at run time is in test_finishing_phase.
    result = run_cli("run", job, "-o", out, "--base-url", server.base_url, env=coze_env())
    assert result.returncode == 2
    assert f"{job}:" in result.stderr and "'no-such-voice' is not in the host's voice list" in (
        result.stderr
    )
    assert server.stats.audio_answers == 0
    assert not (out / "good.wav").exists()


def test_a_finished_job_run_again_sends_nothing(make_server: MakeServer, tmp_path: Path) -> None:
    server = make_server()
    job, out = small_job(tmp_path), tmp_path / "out"
    args = ("run", job, "-o", out, "--base-url", server.base_url)
    assert run_cli(*args, env=coze_env()).returncode == 0
    assert server.stats.requests == 5
    again = run_cli(*args, env=coze_env())
    assert again.returncode == 0
    assert server.stats.requests == 5
    assert read_report(out)["totals"]["cache_hits"] == 5


# --- interruption and resume ---------------------------------------------------------------


def test_sigint_writes_an_interrupted_report_exits_130_and_a_rerun_resumes(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server(latency_ms=300)
    job = write_job(tmp_path, {"a": texts(8, "a"), "b": texts(8, "b")}, fmt="pcm")
    out = tmp_path / "out"
    args = ("run", job, "-o", out, "--base-url", server.base_url, "--concurrency", "2",
            "--qps", "50", "--progress", "plain")  # fmt: skip
    process = start_cli(*args, env=coze_env())
    wait_for(lambda: server.stats.requests >= 4, what="four requests")
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    report = read_report(out)
    assert report["status"] == "interrupted"
    done_before = server.stats.audio_answers
    assert 0 < done_before < 16

    rerun = run_cli(*args, env=coze_env())
    assert rerun.returncode == 0, rerun.stderr
    assert read_report(out)["totals"]["requests"] == 16 - done_before
    # The grace period let the requests in flight finish and be kept: nothing paid twice.
    by_input = server.stats.by_input
    assert sorted(by_input) == sorted(chunk_keys(make_plan(job)))
    assert set(by_input.values()) == {1}


def test_resume_after_sigkill_requests_no_chunk_twice(
    make_server: MakeServer, tmp_path: Path
) -> None:
    # One request at a time, 400 ms each: killed 150 ms after a request arrived, the one
    # before it is surely stored and the one in flight surely not yet answered.
    server = make_server(latency_ms=400)
    job = write_job(tmp_path, {"a": texts(6, "a"), "b": texts(6, "b")}, fmt="pcm")
    out = tmp_path / "out"
    args = ("run", job, "-o", out, "--base-url", server.base_url, "--concurrency", "1",
            "--qps", "50", "--progress", "none")  # fmt: skip
    process = start_cli(*args, env=coze_env())
    wait_for(lambda: server.stats.requests >= 5, what="five requests")
    time.sleep(max(0.0, server.stats.arrivals[-1] + 0.15 - time.monotonic()))
    process.kill()
    process.communicate(timeout=30)
    answered = server.stats.audio_answers
    assert 0 < answered < 12

    rerun = run_cli(*args, env=coze_env())
    assert rerun.returncode == 0, rerun.stderr
    assert read_report(out)["totals"]["cache_hits"] == answered
    by_input = server.stats.by_input
    assert sorted(by_input) == sorted(chunk_keys(make_plan(job)))
    assert set(by_input.values()) == {1}


def test_a_second_run_on_the_same_output_is_refused(
    make_server: MakeServer, tmp_path: Path
) -> None:
    # The first run's one request in flight stalls until the server stops: once the server has
    # seen it, the first run is provably inside its run (holding the lock) however slow the
    # machine is, and stays there until the test interrupts it.
    server = make_server(stall_s=110)
    server.queue_faults(["stall"])
    job, out = small_job(tmp_path), tmp_path / "out"
    args = ("run", job, "-o", out, "--base-url", server.base_url, "--progress", "none",
            "--concurrency", "1", "--timeout", "110")  # fmt: skip
    first = start_cli(*args, env=coze_env())
    try:
        wait_for(lambda: server.stats.requests >= 1, what="the first run's first request")
        second = run_cli(*args, env=coze_env())
        assert server.stats.requests == 1, "the first run went on: its request did not stall"
        assert second.returncode == 2, second.stderr
        assert "another tts-pipeline run" in second.stderr and "--out" in second.stderr
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=30)
    assert first.returncode == 130


# --- progress ------------------------------------------------------------------------------


def test_progress_jsonl_prints_one_json_event_per_line(tmp_path: Path) -> None:
    result = run_cli(
        "run", small_job(tmp_path), "-o", tmp_path / "out", "--local", "--engine", "tone",
        "--progress", "jsonl",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "finish"
    assert kinds.count("chunk") == 5 and kinds.count("chapter") == 2
    assert events[0]["chunks"] == 5
    assert events[-1]["status"] == "ok"
    chapters = {e["chapter"]: e for e in events if e["event"] == "chapter"}
    assert chapters["ch01"]["output"] == "ch01.wav" and chapters["ch01"]["status"] == "ok"


def test_jsonl_stdout_stays_json_with_a_summary_and_junit(tmp_path: Path) -> None:
    summary_file = tmp_path / "step-summary.md"
    summary_file.write_text("# earlier step\n", encoding="utf-8")
    result = run_cli(
        "run", small_job(tmp_path), "-o", tmp_path / "out", "--local", "--engine", "tone",
        "--progress", "jsonl", "--summary", "--junit", tmp_path / "junit.xml",
        env=cli_env(GITHUB_STEP_SUMMARY=str(summary_file)),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert all(json.loads(line) for line in result.stdout.splitlines())
    assert "| ch01 |" in result.stderr  # the printed summary went to stderr
    appended = summary_file.read_text(encoding="utf-8")
    assert appended.startswith("# earlier step\n") and "| ch01 |" in appended
    assert "<testcase" in (tmp_path / "junit.xml").read_text(encoding="utf-8")


def test_progress_plain_prints_a_line_per_chapter_to_stderr(tmp_path: Path) -> None:
    result = run_cli(
        "run", small_job(tmp_path), "-o", tmp_path / "out", "--local", "--engine", "tone",
        "--progress", "plain",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "5 chunks, 165 characters; 0 already in the cache"
    assert any(line.startswith("chapter ch01: written ch01.wav (") for line in lines)
    assert any(line.startswith("chapter ch02: written ch02.wav (") for line in lines)
    assert any(line.startswith("ok: 5/5 chunks in ") for line in lines)


# --- plan and validate (in-process: nothing is sent) ---------------------------------------


def test_plan_prints_chapters_totals_and_the_shortest_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = small_job(tmp_path)
    assert main(["plan", str(job), "--qps", "2", "-o", str(tmp_path / "out")], environ={}) == 0
    out = capsys.readouterr().out
    assert "ch01: 3 lines, 3 chunks, 99 characters, wav 16000 Hz" in out
    assert "total: 2 chapters, 5 lines, 5 chunks, 165 characters, 165 UTF-8 bytes" in out
    assert "to send: 5 requests (0 chunks already in the cache)" in out
    assert "at least 2.5 s at 2 requests/s" in out


def test_plan_json_has_every_chunk(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    long_line = "Sentence number one is here. " * 60  # ~1.7 kB: two chunks at 1024 bytes
    job = write_job(tmp_path, {"ch": [long_line.strip(), "short."]})
    assert main(["plan", str(job), "--json", "-o", str(tmp_path / "o")], environ={}) == 0
    data = json.loads(capsys.readouterr().out)
    chunks = data["chapters"][0]["chunks"]
    assert [c["line"] for c in chunks] == ["1", "1", "2"]
    assert all(c["bytes"] <= 1024 for c in chunks)
    assert " ".join(c["text"] for c in chunks[:2]) == long_line.strip()
    # The long line's two halves are the same text: one request serves both (issue 18).
    assert chunks[0]["text"] == chunks[1]["text"]
    assert data["totals"]["chunks"] == 3 and data["totals"]["requests"] == 2
    assert data["totals"]["repeats"] == 1


def test_validate_ok_and_bad_manifests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = small_job(tmp_path)
    assert main(["validate", str(good)], environ={}) == 0
    assert "ok: 2 chapters, 5 lines" in capsys.readouterr().out

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "defaults:\n  voice_id: v\nchapters:\n  - id: ch01\n    lines:\n"
        "      - text: fine\n      - text: bad speed\n        speed: 9\n",
        encoding="utf-8",
    )
    assert main(["validate", str(bad)], environ={}) == 2
    err = capsys.readouterr().err
    assert f"{bad}:8:" in err and "speed" in err


def test_validate_bad_manifest_as_a_subprocess_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("chapter,text,voice_ld\nch01,hello,x\n", encoding="utf-8")
    result = run_cli("validate", bad)
    assert result.returncode == 2
    assert f"{bad}:1:" in result.stderr and "voice_ld" in result.stderr


# --- say, voices, serve-local --------------------------------------------------------------


def test_say_a_long_text_to_mp3_in_several_chunks(tmp_path: Path) -> None:
    text = "This sentence is long enough to need a few of its friends. " * 40  # ~2.4 kB
    target = tmp_path / "say" / "x.mp3"
    result = run_cli(
        "say", text, "-o", target, "--local", "--engine", "tone", "--voice", "local-tone-1"
    )
    assert result.returncode == 0, result.stderr
    pieces = split_text(text.strip(), 1024)
    assert len(pieces) >= 3
    samples, rate = decode(target)
    # One paragraph: one line, whose chunks are joined, then `say`'s 300 ms pause after it.
    expected = sum(tone_duration(p) for p in pieces) + SAY_PAUSE_S
    assert len(samples) / rate == pytest.approx(expected, abs=0.05)
    assert [p.name for p in target.parent.iterdir()] == ["x.mp3"]  # no temp files left


def test_say_with_the_tone_engine_picks_a_tone_voice(tmp_path: Path) -> None:
    target = tmp_path / "hi.wav"
    result = run_cli("say", "Hello there.", "-o", target, "--local", "--engine", "tone")
    assert result.returncode == 0, result.stderr
    samples, rate = decode(target)
    assert len(samples) / rate == pytest.approx(tone_duration("Hello there.") + SAY_PAUSE_S,
                                                abs=0.01)


def test_say_to_flac(tmp_path: Path) -> None:
    target = tmp_path / "hello.flac"
    result = run_cli(
        "say", "Hello there.", "-o", target, "--local", "--engine", "tone",
        "--voice", "local-tone-2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert target.read_bytes()[:4] == b"fLaC"
    samples, rate = decode(target)
    expected = tone_duration("Hello there.") + SAY_PAUSE_S
    assert len(samples) / rate == pytest.approx(expected, abs=0.01)


def test_voices_local_lists_the_tone_voices() -> None:
    result = run_cli("voices", "--local", "--engine", "tone", "--json")
    assert result.returncode == 0, result.stderr
    ids = {v["voice_id"] for v in json.loads(result.stdout)}
    assert {"local-tone-1", "local-tone-2"} <= ids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_serve_local_answers_a_real_request_and_stops_on_sigint() -> None:
    port = free_port()
    process = start_cli("serve-local", "--engine", "tone", "--port", str(port))
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert f"http://127.0.0.1:{port}" in banner
        body = json.dumps({"input": "hello", "voice_id": "local-tone-1", "response_format": "wav"})
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/audio/speech",
            data=body.encode(),
            headers={"Authorization": "Bearer x", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200
            assert answer.headers["Content-Type"].startswith("audio/")
            assert answer.read()[:4] == b"RIFF"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
    assert process.returncode == 0
