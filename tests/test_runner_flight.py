"""Issue 18: one request per distinct key (single flight, claims across runs), and a paid
answer holds its in-flight slot until the cache has it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from helpers import chunk_keys, make_plan, run_config, run_plan, texts, write_job
from support import FakeBackend

from pipeline import api
from pipeline.cache import ChunkCache
from pipeline.errors import RequestRejected, StorageError
from pipeline.localserver import LocalServer
from pipeline.lookup import lookup_cache
from pipeline.planning import Plan
from pipeline.runner import Runner
from pipeline.speech import SpeechRequest

pytestmark = pytest.mark.anyio

REPEATED = {
    "ch01": ["alpha one.", "beta two.", "alpha one.", "gamma three."],
    "ch02": ["beta two.", "delta four.", "alpha one."],
}
DISTINCT = 4  # alpha, beta, gamma, delta


def _repeated_plan(tmp_path: Path) -> Plan:
    return make_plan(write_job(tmp_path, REPEATED))


async def test_identical_requests_are_sent_once_and_serve_every_chunk(
    tmp_path: Path, local_server: LocalServer
) -> None:
    plan = _repeated_plan(tmp_path)
    report = await run_plan(plan, local_server, tmp_path / "out", concurrency=3)
    assert report.status == "ok"
    assert local_server.stats.requests == DISTINCT
    assert set(local_server.stats.by_input.values()) == {1}
    assert report.totals.requests == DISTINCT
    assert report.totals.cache_hits == plan.chunk_count - DISTINCT  # the repeats
    assert [c.status for c in report.chapters] == ["ok", "ok"]
    # Every chunk of a chapter made it into its file: same sizes as a repeat-free chapter.
    assert (tmp_path / "out" / "ch01.wav").stat().st_size > (
        tmp_path / "out" / "ch02.wav"
    ).stat().st_size


async def test_plan_counts_distinct_requests_and_bills_each_once(tmp_path: Path) -> None:
    plan = _repeated_plan(tmp_path)
    found = lookup_cache(plan, ChunkCache(tmp_path / "cache"), "https://api.coze.cn")
    assert (found.hits, found.requests, found.repeats) == (0, DISTINCT, 3)
    distinct_texts = {c.text: c.characters for c in plan.chunks()}
    assert found.billable_characters == sum(distinct_texts.values()) < plan.characters
    totals = api.plan_json(plan, 5.0, found)["totals"]
    assert (totals["chunks"], totals["requests"], totals["repeats"]) == (7, DISTINCT, 3)
    assert totals["billable_characters"] == found.billable_characters
    assert totals["min_seconds"] == round(DISTINCT / 5.0, 3)


async def test_a_rejected_request_fails_every_chapter_that_repeats_it(tmp_path: Path) -> None:
    def answer(request: SpeechRequest, n: int) -> RequestRejected | None:
        return RequestRejected(4000, "bad text") if request.text == "alpha one." else None

    backend = FakeBackend(answer)
    plan = _repeated_plan(tmp_path)
    report = await Runner(plan, run_config(tmp_path / "o", "fake://backend"), backend).run()
    assert [c.status for c in report.chapters] == ["failed", "failed"]
    assert [r.text for r in backend.requests].count("alpha one.") == 1
    errors = [c.error for c in report.chapters]
    assert all(e is not None and e.code == 4000 for e in errors)


async def test_two_runs_sharing_a_cache_pay_each_distinct_chunk_once(
    tmp_path: Path, make_server: Callable[..., LocalServer]
) -> None:
    server = make_server(latency_ms=20.0)
    job = write_job(tmp_path, {"a": texts(12, "a"), "b": texts(12, "b")})
    plan = make_plan(job)
    shared = tmp_path / "shared-cache"
    reports: list[Any] = []

    async def one(name: str) -> None:
        out = tmp_path / name
        reports.append(await run_plan(plan, server, out, cache_dir=shared, concurrency=4))

    async with anyio.create_task_group() as tg:
        tg.start_soon(one, "out1")
        tg.start_soon(one, "out2")
    assert [r.status for r in reports] == ["ok", "ok"]
    assert server.stats.by_input.total() == plan.chunk_count == len(set(chunk_keys(plan)))
    assert set(server.stats.by_input.values()) == {1}
    assert sum(r.totals.requests for r in reports) == plan.chunk_count
    # What one run bought while the other waited on its claim is a hit for the other.
    assert sum(r.totals.cache_hits for r in reports) == plan.chunk_count
    for out in ("out1", "out2"):
        assert (tmp_path / out / "a.wav").read_bytes() == (tmp_path / "out1" / "a.wav").read_bytes()


async def test_at_most_concurrency_answers_are_paid_and_not_yet_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = threading.Lock()
    paid = committed = most_outstanding = 0

    def answer(request: SpeechRequest, n: int) -> None:
        nonlocal paid, most_outstanding
        with lock:
            paid += 1
            most_outstanding = max(most_outstanding, paid - committed)

    real_put = ChunkCache.put

    def slow_put(self: ChunkCache, key: str, audio: bytes, ext: str) -> Path:
        nonlocal committed
        time.sleep(0.01)  # a slow disk: answers arrive faster than they are committed
        path = real_put(self, key, audio, ext)
        with lock:
            committed += 1
        return path

    monkeypatch.setattr(ChunkCache, "put", slow_put)
    backend = FakeBackend(answer)
    plan = make_plan(write_job(tmp_path, {"ch": texts(40)}, fmt="pcm"))
    config = run_config(tmp_path / "o", "fake://backend", concurrency=3)
    report = await Runner(plan, config, backend).run()
    assert report.status == "ok"
    assert paid == committed == 40
    assert 1 <= most_outstanding <= 3


async def test_a_claim_the_cache_cannot_take_fails_the_chapter_and_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: ChunkCache, key: str, timeout_s: float | None = None) -> None:
        raise StorageError(30, f"cannot claim a cache key in {self.directory}: read-only")

    monkeypatch.setattr(ChunkCache, "claim", refuse)
    backend = FakeBackend()
    plan = make_plan(write_job(tmp_path, {"ch": texts(3)}, fmt="pcm"))
    report = await Runner(plan, run_config(tmp_path / "o", "fake://backend"), backend).run()
    assert backend.requests == []  # nothing is bought that could not be kept
    error = report.chapters[0].error
    assert report.chapters[0].status == "failed" and error is not None
    assert "cannot claim a cache key" in error.message


async def test_a_failed_final_sync_is_logged_and_the_run_keeps_its_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def fail_close(self: ChunkCache) -> None:
        raise StorageError(5, "cannot sync the cache: I/O error")

    monkeypatch.setattr(ChunkCache, "close", fail_close)
    plan = make_plan(write_job(tmp_path, {"ch": texts(2)}, fmt="pcm"))
    with caplog.at_level(logging.WARNING, logger="pipeline.lookup"):
        report = await Runner(
            plan, run_config(tmp_path / "o", "fake://backend"), FakeBackend()
        ).run()
    assert report.status == "ok"
    assert "final sync failed" in caplog.text
