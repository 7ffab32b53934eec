"""Issue 14.7: voices and emotions checked against the host's voice list before any request."""

from __future__ import annotations

from pathlib import Path

from helpers import cli_env, run_cli

from pipeline.localserver import LocalServer

JOB = (
    "defaults: {voice_id: local-tone-1, response_format: wav, sample_rate: 16000}\n"
    "chapters:\n"
    "  - id: a\n"
    "    lines:\n"
    "      - text: a good line.\n"
    "      - {text: a misspelt voice., voice_id: local-tone-9}\n"
    "      - {text: an emotion the voice lacks., voice_id: local-tone-2, emotion: happy}\n"
    "      - {text: an emotion the voice has., voice_id: local-tone-1, emotion: happy}\n"
)


def _job(tmp_path: Path, body: str = JOB) -> Path:
    job = tmp_path / "job.yaml"
    job.write_text(body, encoding="utf-8")
    return job


def test_run_refuses_unknown_voices_and_emotions_with_file_line_before_any_request(
    tmp_path: Path, local_server: LocalServer
) -> None:
    job = _job(tmp_path)
    done = run_cli("run", job, "--out", tmp_path / "out", "--base-url", local_server.base_url,
                   "--progress", "none", env=cli_env(COZE_API_TOKEN="test-token"))
    assert done.returncode == 2, done.stderr
    assert f"{job}:6: voice_id 'local-tone-9' is not in the host's voice list" in done.stderr
    assert f"{job}:7: voice 'local-tone-2' has no emotion 'happy'" in done.stderr
    assert f"{job}:8" not in done.stderr and f"{job}:5" not in done.stderr
    assert local_server.stats.audio_answers == 0


def test_validate_online_finds_the_same_problems_and_offline_does_not_look(
    tmp_path: Path, local_server: LocalServer
) -> None:
    job = _job(tmp_path)
    offline = run_cli("validate", job)
    assert offline.returncode == 0, offline.stderr
    online = run_cli("validate", job, "--online", "--base-url", local_server.base_url,
                     env=cli_env(COZE_API_TOKEN="test-token"))
    assert online.returncode == 2
    assert f"{job}:6:" in online.stderr and f"{job}:7:" in online.stderr
    assert "2 voice problem(s)" in online.stderr


def test_a_job_the_host_can_speak_passes(tmp_path: Path, local_server: LocalServer) -> None:
    good = "\n".join(JOB.splitlines()[:5] + [JOB.splitlines()[7]]) + "\n"
    job = _job(tmp_path, good)
    done = run_cli("validate", job, "--online", "--base-url", local_server.base_url,
                   env=cli_env(COZE_API_TOKEN="test-token"))
    assert done.returncode == 0, done.stderr
