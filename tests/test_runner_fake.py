"""Runner behaviour against the in-process fake backend: no server, no sockets."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import make_plan, run_config, texts, write_job
from support import FakeBackend

from pipeline.errors import FatalApiError, RequestRejected, TransientApiError
from pipeline.runner import Runner
from pipeline.speech import SpeechRequest

pytestmark = pytest.mark.anyio


def _job(tmp_path: Path) -> Path:
    return write_job(tmp_path, {"ch01": texts(4, "one"), "ch02": texts(3, "two")}, fmt="pcm")


async def test_every_chunk_is_asked_once_and_both_chapters_are_written(tmp_path: Path) -> None:
    backend = FakeBackend(latency_s=0.01)
    config = run_config(tmp_path / "out", "fake://backend", concurrency=3)
    report = await Runner(make_plan(_job(tmp_path)), config, backend).run()
    assert report.status == "ok"
    assert len(backend.requests) == 7
    assert len({r.text for r in backend.requests}) == 7
    assert 1 <= backend.most_in_flight <= 3
    assert [c.output for c in report.chapters] == ["ch01.pcm", "ch02.pcm"]
    assert (tmp_path / "out" / "ch01.pcm").stat().st_size > 0


async def test_a_transient_error_is_retried_and_counted(tmp_path: Path) -> None:
    def answer(request: SpeechRequest, n: int) -> TransientApiError | None:
        return TransientApiError(5000, "busy") if n == 0 else None

    backend = FakeBackend(answer)
    report = await Runner(
        make_plan(_job(tmp_path)), run_config(tmp_path / "o", "fake://backend"), backend
    ).run()
    assert report.status == "ok"
    assert len(backend.requests) == 8
    assert report.totals.retries == 1


async def test_a_rejected_request_fails_its_chapter_only(tmp_path: Path) -> None:
    def answer(request: SpeechRequest, n: int) -> RequestRejected | None:
        return RequestRejected(4000, "bad text") if request.text.startswith("two 1") else None

    backend = FakeBackend(answer)
    report = await Runner(
        make_plan(_job(tmp_path)), run_config(tmp_path / "o", "fake://backend"), backend
    ).run()
    assert report.status == "partial"
    assert [c.status for c in report.chapters] == ["ok", "failed"]
    failed = report.chapters[1].error
    assert failed is not None and failed.code == 4000


async def test_a_fatal_answer_stops_the_run(tmp_path: Path) -> None:
    def answer(request: SpeechRequest, n: int) -> FatalApiError | None:
        return FatalApiError(4100, "bad token") if n == 2 else None

    backend = FakeBackend(answer)
    config = run_config(tmp_path / "o", "fake://backend", concurrency=1)
    report = await Runner(make_plan(_job(tmp_path)), config, backend).run()
    assert report.status == "aborted"
    assert report.error is not None and report.error.code == 4100
    assert len(backend.requests) == 3  # nothing is started after the fatal answer
