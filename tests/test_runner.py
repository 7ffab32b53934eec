"""The runner against the local server: pacing, retries, faults, fatal stops, cache, order.

Every run here is in-process (``Runner`` with a real ``SpeechClient``) against a tone-engine
server in its own thread; the server's counters say what was really sent. The CLI-level
behaviour (signals, exit status, messages) is in test_cli.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from audio.test_audio_support import decode, dominant_frequency
from helpers import (
    FAST_RETRY,
    busiest_second,
    distinct_neighbours,
    make_plan,
    read_report,
    run_plan,
    spans,
    texts,
    write_job,
)

from pipeline.cache import ChunkCache, OutputLock
from pipeline.errors import ConfigError
from pipeline.limits import RateLimit
from pipeline.localserver import FAULT_KINDS, LocalServer
from pipeline.runner import Runner

pytestmark = pytest.mark.anyio

MakeServer = Callable[..., LocalServer]


def two_chapters(tmp_path: Path, fmt: str = "wav") -> Path:
    return write_job(tmp_path, {"ch01": texts(4, "one"), "ch02": texts(3, "two")}, fmt=fmt)


# --- pacing ------------------------------------------------------------------------------


async def test_the_server_never_sees_more_than_qps_plus_burst(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server()
    plan = make_plan(write_job(tmp_path, {"ch": texts(30)}, fmt="pcm"))
    started = time.monotonic()
    report = await run_plan(
        plan, server, tmp_path / "out", rate=RateLimit(qps=20.0, burst=1), concurrency=8
    )
    elapsed = time.monotonic() - started
    assert report.status == "ok"
    assert server.stats.requests == 30
    assert busiest_second(server.stats.arrivals) <= 20 + 1
    assert elapsed >= 29 / 20  # the first token is free, the 29 others 50 ms apart


async def test_requests_in_flight_never_exceed_the_concurrency(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server(latency_ms=80)
    plan = make_plan(write_job(tmp_path, {"ch": texts(16)}, fmt="pcm"))
    report = await run_plan(plan, server, tmp_path / "out", concurrency=3)
    assert report.status == "ok"
    assert server.stats.max_in_flight == 3


async def test_slows_down_on_rate_limit_answers_and_recovers(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server()
    server.queue_faults(["rate429_bare"] * 3)
    plan = make_plan(write_job(tmp_path, {"ch": texts(40)}, fmt="pcm"))
    runners: list[Runner] = []
    rate = RateLimit(qps=40.0, settle_s=0.1, hold_s=0.1, increase_per_s=40.0)
    report = await run_plan(
        plan, server, tmp_path / "out", rate=rate, concurrency=1, on_runner=runners.append
    )
    assert report.status == "ok"
    assert report.totals.retries == 3
    stats = runners[0].limiter.stats
    assert stats.decreases >= 1
    # The first arrivals after the refusals are slower than the ceiling allows: three
    # refusals in a row are a limit, and the scheduled limiter drops 20 % (no more run-wide
    # pause), so a gap is about 1 / (0.8 x 39.2) s = 0.032 s against 0.0255 s at the ceiling.
    arrivals = server.stats.arrivals
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert max(gaps[3:8]) > 1.2 / 40
    # ...and by the end the run is back at its ceiling.
    assert stats.current_qps == rate.ceiling  # qps less the margin


# --- faults ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", FAULT_KINDS)
async def test_each_fault_kind_is_survived_and_the_output_is_identical(
    make_server: MakeServer, tmp_path: Path, kind: str
) -> None:
    server = make_server(stall_s=5.0)
    plan = make_plan(two_chapters(tmp_path))
    clean = await run_plan(plan, server, tmp_path / "clean")
    assert clean.status == "ok"
    server.reset()
    server.queue_faults([kind, kind])
    faulty = await run_plan(plan, server, tmp_path / "faulty", read_timeout=0.3)
    assert faulty.status == "ok", faulty.chapters
    assert faulty.totals.retries == 2
    assert server.stats.faults[kind] == 2
    for chapter in ("ch01.wav", "ch02.wav"):
        assert (tmp_path / "faulty" / chapter).read_bytes() == (
            tmp_path / "clean" / chapter
        ).read_bytes()


async def test_transient_errors_beyond_the_retries_fail_the_chapter(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server(fault_rate=1.0, fault_kinds=("http500",))
    plan = make_plan(two_chapters(tmp_path))
    report = await run_plan(
        plan, server, tmp_path / "out", concurrency=1, retry=replace(FAST_RETRY, retries=2)
    )
    assert report.status == "failed" and report.exit_code == 1
    for chapter in report.chapters:
        assert chapter.status == "failed"
        assert chapter.error is not None and chapter.error.code == 5000
    # Every chunk that was tried was tried 1 + 2 times, and no chapter sent all its chunks.
    assert server.stats.requests % 3 == 0
    assert server.stats.requests < 3 * plan.chunk_count
    assert report.totals.retries == 2 * server.stats.requests // 3


async def test_a_rejected_request_fails_only_its_chapter(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server()
    job = write_job(
        tmp_path,
        {"ch01": texts(2, "a"), "bad": texts(3, "b"), "ch03": texts(2, "c")},
        chapter_fields={"bad": {"voice_id": "no-such-voice"}},
    )
    plan = make_plan(job)
    report = await run_plan(plan, server, tmp_path / "out", concurrency=1)
    assert report.status == "partial" and report.exit_code == 1
    bad = report.chapters[1]
    assert bad.status == "failed" and bad.output is None
    assert bad.error is not None and bad.error.code == 4200 and bad.error.line == "1"
    assert [c.status for c in report.chapters] == ["ok", "failed", "ok"]
    assert (tmp_path / "out" / "ch01.wav").is_file()
    assert (tmp_path / "out" / "ch03.wav").is_file()
    assert not (tmp_path / "out" / "bad.wav").exists()
    # Once a chapter has failed, its chunks not yet taken by a worker are not sent.
    assert server.stats.requests < 2 + 3 + 2
    assert read_report(tmp_path / "out")["chapters"][1]["error"]["code"] == 4200


async def test_a_fatal_answer_stops_the_run_within_a_second(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server(latency_ms=3000)
    server.queue_faults([{"code": 4100, "http_status": 401}])
    plan = make_plan(write_job(tmp_path, {"ch": texts(20)}, fmt="pcm"))
    started = time.monotonic()
    report = await run_plan(plan, server, tmp_path / "out", concurrency=4)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0  # the requests in flight (3 s each) were cancelled
    assert report.status == "aborted" and report.exit_code == 3
    assert report.error is not None and report.error.code == 4100
    assert server.stats.requests <= 4  # nothing new after the fatal answer
    data = read_report(tmp_path / "out")
    assert data["status"] == "aborted" and data["error"]["code"] == 4100
    assert {c["status"] for c in data["chapters"]} == {"pending"}


# --- report totals -----------------------------------------------------------------------


async def test_report_totals_count_requests_retries_hits_and_billing(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server()
    plan = make_plan(two_chapters(tmp_path))
    first_chunk = next(plan.chunks())
    server.queue_faults(["bad_audio", "http500"])  # both hit the first chunk (concurrency 1)
    report = await run_plan(plan, server, tmp_path / "out", concurrency=1)
    totals = read_report(tmp_path / "out")["totals"]
    assert totals["chunks"] == 7 and totals["chapters"] == 2 and totals["lines"] == 7
    assert totals["characters"] == plan.characters
    assert totals["requests"] == 9 and totals["retries"] == 2 and totals["cache_hits"] == 0
    # The bad audio was answered as audio: billed by the API, so counted.
    assert totals["billed_characters"] == plan.characters + first_chunk.characters
    assert server.stats.billed_characters == plan.characters  # the server bills real audio
    assert totals["audio_seconds"] == pytest.approx(
        sum(c.duration_s or 0 for c in report.chapters), abs=0.01
    )

    again = await run_plan(plan, server, tmp_path / "out")
    assert again.status == "ok"
    assert again.totals.requests == 0 and again.totals.cache_hits == 7
    assert again.totals.billed_characters == 0
    assert server.stats.requests == 9  # a finished job re-run sends nothing


# --- cache -------------------------------------------------------------------------------


async def test_a_corrupt_cache_entry_is_synthesized_again(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server()
    plan = make_plan(two_chapters(tmp_path))
    out = tmp_path / "out"
    await run_plan(plan, server, out)
    before = (out / "ch02.wav").read_bytes()
    cache = ChunkCache(out / ".cache")
    victim = list(plan.chapters[1].chunks)[1]
    entry = cache.get(cache.key(victim.request().body(), server.base_url))
    assert entry is not None
    entry.write_bytes(entry.read_bytes()[:-10] + b"\x00" * 10)  # same size, wrong bytes
    server.reset()
    report = await run_plan(plan, server, out)
    assert report.status == "ok"
    assert server.stats.requests == 1
    assert report.totals.cache_hits == 6
    assert (out / "ch02.wav").read_bytes() == before


async def test_a_second_run_on_the_same_output_is_refused(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server()
    plan = make_plan(two_chapters(tmp_path))
    out = tmp_path / "out"
    out.mkdir()
    with OutputLock(out), pytest.raises(ConfigError, match="another tts-pipeline run"):
        await run_plan(plan, server, out)
    assert server.stats.requests == 0


async def test_the_cache_is_per_host(make_server: MakeServer, tmp_path: Path) -> None:
    first, second = make_server(), make_server()
    plan = make_plan(two_chapters(tmp_path))
    await run_plan(plan, first, tmp_path / "out")
    report = await run_plan(plan, second, tmp_path / "out")
    assert report.totals.cache_hits == 0
    assert second.stats.requests == 7


# --- order -------------------------------------------------------------------------------


async def test_chunks_finish_in_any_order_and_chapters_keep_manifest_order(
    make_server: MakeServer, tmp_path: Path
) -> None:
    # Latency grows with the text and is jittered: later chunks often finish first.
    server = make_server(latency_ms=20, latency_per_byte_ms=2.0, jitter=0.9)
    chunk_texts = distinct_neighbours(8)
    # Long and short lines alternate, so that a short one sent later overtakes a long one.
    chunk_texts = [t * (4 if i % 2 == 0 else 1) for i, t in enumerate(chunk_texts)]
    plan = make_plan(write_job(tmp_path, {"ch": chunk_texts}))
    order: list[str] = []

    class Recorder:
        def start(self, *, chunks: int, characters: int, cached: int) -> None: ...

        def chunk_done(self, *, chapter_id: str, characters: int, cached: bool) -> None:
            order.append(str(characters))

        def retry(self, *, chapter_id: str, code: int, message: str, delay_s: float) -> None: ...

        def chapter_done(self, event: object) -> None: ...

        def message(self, text: str) -> None: ...

        def finish(self, *, status: str, elapsed_s: float) -> None: ...

    report = await run_plan(plan, server, tmp_path / "out", concurrency=8, progress=Recorder())
    assert report.status == "ok"
    sent_order = [str(len(t)) for t in chunk_texts]
    assert order != sent_order  # finished out of order...
    samples, rate = decode(tmp_path / "out" / "ch.wav")
    expected = spans(chunk_texts)
    assert len(samples) == expected[-1][1]
    for start, end, frequency in expected:  # ...but joined in manifest order
        quarter = (end - start) // 4
        found = dominant_frequency(samples[start + quarter : end - quarter], rate)
        assert found == pytest.approx(frequency, rel=0.03)


async def test_a_chapter_is_assembled_as_soon_as_its_last_chunk_is_in(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server()
    plan = make_plan(write_job(tmp_path, {"first": texts(2, "a"), "second": texts(8, "b")}))
    out = tmp_path / "out"
    seen: list[tuple[str, int]] = []

    class Watch:
        def start(self, *, chunks: int, characters: int, cached: int) -> None: ...

        def chunk_done(self, *, chapter_id: str, characters: int, cached: bool) -> None: ...

        def retry(self, *, chapter_id: str, code: int, message: str, delay_s: float) -> None: ...

        def chapter_done(self, event: object) -> None:
            seen.append((getattr(event, "chapter_id", ""), server.stats.requests))

        def message(self, text: str) -> None: ...

        def finish(self, *, status: str, elapsed_s: float) -> None: ...

    await run_plan(plan, server, out, concurrency=1, rate=RateLimit(qps=20.0), progress=Watch())
    assert [cid for cid, _ in seen] == ["first", "second"]
    assert seen[0][1] < 10  # "first" was written while "second" was still being sent
