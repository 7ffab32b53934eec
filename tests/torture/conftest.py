"""Fixtures of the torture suite: the sizes, and one fault-free reference run per job."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from pipeline.localserver import ServerConfig, serve_in_thread

from .harness import CI, FULL, Size, chapter_files, digests, load_plan, run_in_process, write_job

# The two variants of every sized test: CI's in the default run, the full one under `slow`.
SIZES = [
    pytest.param(CI, id="ci"),
    pytest.param(FULL, id="full", marks=[pytest.mark.slow, pytest.mark.timeout(1800)]),
]


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Size], dict[str, str]]:
    """``reference(size)``: digests of the chapter files of a fault-free, uninterrupted run
    of the size's job (job seed 0), made once per session."""
    made: dict[str, dict[str, str]] = {}

    def get(size: Size) -> dict[str, str]:
        if size.name not in made:
            folder = tmp_path_factory.mktemp(f"reference-{size.name}")
            made[size.name] = _reference_run(folder, size)
        return made[size.name]

    return get


def _reference_run(folder: Path, size: Size) -> dict[str, str]:
    job = write_job(folder, size.chunks)
    out = folder / "out"
    with serve_in_thread(ServerConfig()) as server:
        report = anyio.run(lambda: run_in_process(load_plan(job), out, server.base_url))
        assert report.status == "ok", json.dumps(report.to_json(), indent=1)
        assert server.stats.faults == {}
    files = digests(chapter_files(out))
    assert len(files) == -(-size.chunks // 100), sorted(files)
    return files
