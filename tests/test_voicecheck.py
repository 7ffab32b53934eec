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


def test_lines_that_share_a_place_and_a_problem_are_one_message_naming_how_many(
    tmp_path: Path,
) -> None:
    from dataclasses import replace

    from pipeline.coze.client import Voice
    from pipeline.manifest import load_job
    from pipeline.voicecheck import voice_problems

    job = _job(tmp_path, (
        "defaults: {voice_id: en-female, response_format: wav, sample_rate: 16000}\n"
        "chapters:\n"
        "  - id: a\n"
        "    lines:\n"
        "      - text: one.\n"
        "      - text: two.\n"
        "      - text: three.\n"
        "      - {text: four., emotion: happy, voice_id: local-tone-2}\n"
    ))
    loaded = load_job(job)
    chapter = loaded.chapters[0]
    # Three lines from one place (a paragraph cut in lines, an EPUB file without lines).
    shared = [replace(line, lineno=5) for line in chapter.lines[:3]] + [chapter.lines[3]]
    loaded = replace(loaded, chapters=(replace(chapter, lines=tuple(shared)),))
    voices = [Voice("local-tone-2", "Tone 2", emotions=("neutral",))]
    assert voice_problems(loaded, voices) == [
        f"{job}:5: voice_id 'en-female' is not in the host's voice list "
        "(3 lines; `tts-pipeline voices` lists them)",
        f"{job}:8: voice 'local-tone-2' has no emotion 'happy' (it supports: neutral)",
    ]
    # Distinct places keep their own FILE:LINE, one message each.
    apart = voice_problems(load_job(job), voices)
    assert [p.split(": ")[0] for p in apart] == [f"{job}:{n}" for n in (5, 6, 7, 8)]
    assert all("lines;" not in p for p in apart)
