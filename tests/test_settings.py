"""Defaults and the one merge: command line > job file > defaults; who picks the host."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import cli
from pipeline.cli import build_parser
from pipeline.errors import ConfigError
from pipeline.manifest import RunSettings, load_job
from pipeline.settings import (
    DEFAULT_BASE_URL,
    DEFAULT_CONCURRENCY,
    DEFAULT_QPS,
    TargetChoice,
    choose_target,
    host_id,
    merge_run,
)


def test_explicit_base_url_beats_a_job_files_local_backend() -> None:
    choice = TargetChoice(base_url="https://api.coze.com/")
    target = choose_target(choice, "local", None, "tok")
    assert (target.local, target.base_url, target.host_id) == (
        False,
        "https://api.coze.com",
        "https://api.coze.com",
    )


def test_explicit_backend_coze_beats_a_job_files_local_backend() -> None:
    target = choose_target(TargetChoice(backend="coze"), "local", "http://127.0.0.1:9", "t")
    assert (target.local, target.base_url) == (False, "http://127.0.0.1:9")


def test_job_files_backend_decides_when_nothing_is_explicit() -> None:
    target = choose_target(TargetChoice(fallback_base_url="https://x.example"), "local", None, "")
    assert target.local and target.host_id == "local://espeak"
    assert choose_target(TargetChoice(), None, None, "t").base_url == DEFAULT_BASE_URL


def test_explicit_local_beats_a_job_files_coze_backend() -> None:
    target = choose_target(TargetChoice(backend="local", engine="tone"), "coze", None, "t")
    assert target.local and target.host_id == "local://tone"


def test_url_order_is_explicit_then_environment_then_job() -> None:
    both = TargetChoice(base_url="https://a.example", fallback_base_url="https://b.example")
    assert choose_target(both, None, "https://c.example", "t").base_url == "https://a.example"
    env = TargetChoice(fallback_base_url="https://b.example")
    assert choose_target(env, None, "https://c.example", "t").base_url == "https://b.example"
    assert choose_target(TargetChoice(), None, "https://c.example", "t").base_url == (
        "https://c.example"
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://API.Coze.cn/", "https://api.coze.cn"),
        ("https://api.coze.cn:443/v1", "https://api.coze.cn"),
        ("http://user:pw@127.0.0.1:8080/x?q", "http://127.0.0.1:8080"),
        ("http://[::1]:80", "http://[::1]"),
    ],
)
def test_one_host_normalisation(url: str, expected: str) -> None:
    assert host_id(url) == expected


@pytest.mark.parametrize("url", ["ftp://x", "api.coze.cn", "https://", "http://h:99999"])
def test_bad_base_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        choose_target(TargetChoice(base_url=url), None, None, "t")


def test_merge_run_takes_the_command_line_then_the_job_then_the_default() -> None:
    job = RunSettings(qps=2.0, concurrency=None, retries=1)
    merged = merge_run(job, qps=9.0, retries=None)
    assert (merged.qps, merged.concurrency, merged.retries) == (9.0, DEFAULT_CONCURRENCY, 1)
    assert merge_run(RunSettings()).qps == DEFAULT_QPS


@pytest.mark.parametrize(
    ("flags", "host"),
    [
        ([], "local://espeak"),
        (["--base-url", "https://api.coze.com"], "https://api.coze.com"),
        (["--backend", "coze"], DEFAULT_BASE_URL),
        (["--local", "--engine", "tone"], "local://tone"),
    ],
)
def test_the_command_line_beats_run_backend_local(
    tmp_path: Path, flags: list[str], host: str
) -> None:
    job_file = tmp_path / "job.yaml"
    job_file.write_text(
        "run: {backend: local}\nchapters:\n- {id: a, text: Hi., voice_id: v}\n", encoding="utf-8"
    )
    args = build_parser().parse_args(["run", str(job_file), *flags])
    job = load_job(job_file)
    target = cli._target(args, cli.Environment(token="t", base_url=None), job)
    assert target.host_id == host
