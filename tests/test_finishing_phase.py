"""Issue 14: the finishing phase in a run: incremental, visible, interruptible, tagged books."""

from __future__ import annotations

import io
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import av
import pytest
from helpers import (
    cli_env,
    interrupt_when,
    make_plan,
    read_report,
    run_plan,
    start_cli,
    texts,
    write_job,
)

import pipeline.audio.assemble
import pipeline.audio.book
import pipeline.finishing
import pipeline.runner
from pipeline.audio.fingerprint import sidecar_path
from pipeline.localserver import LocalServer
from pipeline.progress import JsonlProgress
from pipeline.runner import OutputOptions

CHAPTERS = {"a": texts(3, "alpha"), "b": texts(3, "beta"), "c": texts(3, "gamma")}
BOOK = OutputOptions(format="mp3", book="book.m4b", album="The Book", subtitles=("srt",))


def _mtimes(out: Path) -> dict[str, int]:
    # The output lock is taken by every run: it is not an output.
    return {
        p.name: p.stat().st_mtime_ns
        for p in out.iterdir()
        if p.is_file() and p.name != ".tts-pipeline.lock"
    }


def _no_assembly(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make any chapter assembly or book build record its call (and fail the run's file)."""
    calls: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        calls.append("called")
        raise AssertionError("rebuilt a file whose inputs did not change")

    # finishing imports these on first use (issue 18), so they are replaced where they live.
    monkeypatch.setattr(pipeline.audio.assemble, "assemble_chapter", refuse)
    monkeypatch.setattr(pipeline.audio.book, "build_book", refuse)
    return calls


@pytest.mark.anyio
async def test_an_unchanged_rerun_builds_nothing_and_reports_the_same(
    tmp_path: Path, local_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = write_job(tmp_path, CHAPTERS)
    out = tmp_path / "out"
    first = await run_plan(make_plan(job), local_server, out, output=BOOK)
    assert first.status == "ok" and first.book == "book.m4b"
    before = _mtimes(out)
    calls = _no_assembly(monkeypatch)
    started = time.monotonic()
    second = await run_plan(make_plan(job), local_server, out, output=BOOK)
    took = time.monotonic() - started
    assert calls == []
    assert second.status == "ok" and second.book == "book.m4b"
    assert second.totals.requests == 0
    assert second.totals.audio_seconds == pytest.approx(first.totals.audio_seconds)
    assert [c.duration_s for c in second.chapters] == [c.duration_s for c in first.chapters]
    assert [c.subtitles for c in second.chapters] == [["a.srt"], ["b.srt"], ["c.srt"]]
    after = _mtimes(out)
    del before["report.json"], after["report.json"]
    assert after == before
    assert took < 5.0


@pytest.mark.anyio
async def test_only_the_changed_or_damaged_chapter_and_the_book_are_rebuilt(
    tmp_path: Path, local_server: LocalServer
) -> None:
    job = write_job(tmp_path, CHAPTERS)
    out = tmp_path / "out"
    await run_plan(make_plan(job), local_server, out, output=BOOK)
    before = _mtimes(out)
    await anyio.sleep(0.01)  # a rebuilt file gets a later modification time
    changed = dict(CHAPTERS, b=[*CHAPTERS["b"][:2], "beta changed: a new last line."])
    job = write_job(tmp_path, changed)
    (out / "c.mp3").write_bytes((out / "c.mp3").read_bytes()[:-100])  # damaged by hand
    report = await run_plan(make_plan(job), local_server, out, output=BOOK)
    assert report.status == "ok"
    after = _mtimes(out)
    assert after["a.mp3"] == before["a.mp3"]
    assert after["b.mp3"] > before["b.mp3"]
    assert after["c.mp3"] > before["c.mp3"]
    assert after["book.m4b"] > before["book.m4b"]


@pytest.mark.anyio
async def test_a_missing_file_is_never_reported_ok(
    tmp_path: Path, local_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = write_job(tmp_path, {"a": texts(2)})
    out = tmp_path / "out"
    original = pipeline.finishing.finish_chapter

    def vanishing(*args: Any, **kwargs: Any) -> pipeline.finishing.Finished:
        result = original(*args, **kwargs)
        result.path.unlink()  # as if removed by someone else before the report
        return result

    monkeypatch.setattr(pipeline.finishing, "finish_chapter", vanishing)
    await run_plan(make_plan(job), local_server, out)
    chapter = read_report(out)["chapters"][0]
    assert chapter["status"] != "ok" and chapter["output"] is None


@pytest.mark.anyio
async def test_jsonl_progress_shows_each_chapter_finishing(
    tmp_path: Path, local_server: LocalServer
) -> None:
    job = write_job(tmp_path, CHAPTERS)
    stream = io.StringIO()
    report = await run_plan(make_plan(job), local_server, tmp_path / "out",
                            progress=JsonlProgress(stream), output=BOOK)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    done = {e["chapter"]: e["audio_s"] for e in events if e["event"] == "finishing" and e["done"]}
    durations = {c.id: c.duration_s for c in report.chapters}
    assert done.keys() == durations.keys()
    for cid, seconds in done.items():
        assert seconds == pytest.approx(durations[cid], abs=0.1)
    # The book has its own events, the last one done with the whole book's length.
    book = [e for e in events if e["event"] == "book"]
    assert book and book[-1]["done"] and book[-1]["name"] == "book.m4b"
    assert book[-1]["audio_s"] == pytest.approx(sum(durations.values()), abs=0.1)
    assert events.index(book[-1]) < [e["event"] for e in events].index("finish")


@pytest.mark.anyio
async def test_the_book_carries_the_book_section_tags(
    tmp_path: Path, local_server: LocalServer
) -> None:
    from pipeline.audio import BookInfo

    info = BookInfo(title="A Study", author="A. Writer", narrator="Tone", year="1887")
    output = OutputOptions(format="mp3", book="book.m4b", album="A Study", book_info=info)
    job = write_job(tmp_path, {"a": texts(2), "b": texts(2, "b")})
    out = tmp_path / "out"
    report = await run_plan(make_plan(job), local_server, out, output=output)
    assert report.book == "book.m4b"
    with av.open(str(out / "book.m4b")) as container:
        tags = {k.lower(): v for k, v in container.metadata.items()}
    assert tags.get("title") == "A Study"
    assert "A. Writer" in tags.get("artist", "")
    assert sidecar_path(out / "book.m4b").is_file()


def test_shard_writes_no_partial_book(tmp_path: Path, local_server: LocalServer) -> None:
    from helpers import run_cli

    job = write_job(tmp_path, {"a": texts(2), "b": texts(2, "b")})
    body = job.read_text(encoding="utf-8") + "output:\n  book: book.m4b\n"
    job.write_text(body, encoding="utf-8")
    out = tmp_path / "out"
    done = run_cli("run", job, "--out", out, "--base-url", local_server.base_url,
                   "--progress", "none", "--shard", "1/2",
                   env=cli_env(COZE_API_TOKEN="test-token"))
    assert done.returncode == 0, done.stderr
    assert not (out / "book.m4b").exists()
    assert "characters billed" in done.stderr and "retries" in done.stderr


def _long_job(directory: Path) -> Path:
    # The tone engine speaks 60 ms a character: 12 lines of 900 characters are ~11 minutes.
    lines = [f"line {i} " + "la " * 300 for i in range(12)]
    job = write_job(directory, {"long": lines}, run={"max_chunk_bytes": 1000})
    body = job.read_text(encoding="utf-8") + "output:\n  format: mp3\n  loudness_lufs: -18\n"
    job.write_text(body, encoding="utf-8")
    return job


def _wait_for_event(process: Any, wanted: Callable[[dict[str, Any]], bool]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        if wanted(json.loads(line)):
            return
    raise AssertionError("the event never came: " + process.stderr.read())


def test_sigint_while_finishing_exits_130_within_6_s_and_the_report_matches_the_disk(
    tmp_path: Path, local_server: LocalServer
) -> None:
    job = _long_job(tmp_path)
    out = tmp_path / "out"
    process = start_cli("run", job, "--out", out, "--base-url", local_server.base_url,
                        "--progress", "jsonl", "--qps", "1000",
                        env=cli_env(COZE_API_TOKEN="test-token"))
    def finishing() -> None:
        _wait_for_event(process, lambda e: e["event"] == "finishing" and not e["done"])

    took = interrupt_when(process, finishing, signal.SIGINT, timeout=30)
    assert process.returncode == 130
    assert took < 6.0, f"exited {took:.1f} s after SIGINT"
    report_path = out / "report.json"
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["status"] == "interrupted"
    assert report["chapters"][0]["status"] == "pending"
    assert not (out / "long.mp3").exists()
    written = report_path.stat().st_mtime_ns
    newer = [
        p for p in out.rglob("*")
        if p.is_file() and p.name != ".tts-pipeline.lock" and p.stat().st_mtime_ns > written
    ]
    assert newer == []


@pytest.mark.anyio
async def test_a_chapter_error_names_the_file_and_line(
    tmp_path: Path, local_server: LocalServer
) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(
        "defaults: {voice_id: local-tone-1, response_format: wav, sample_rate: 16000}\n"
        "chapters:\n"
        "  - id: a\n"
        "    lines:\n"
        "      - text: a good line.\n"
        "      - {text: a line in an unknown voice., voice_id: no-such-voice}\n",
        encoding="utf-8",
    )
    await run_plan(make_plan(job), local_server, tmp_path / "out")
    error = read_report(tmp_path / "out")["chapters"][0]["error"]
    assert error["file_line"] == f"{job}:6"


def test_plan_estimates_finishing_from_the_text_and_the_options(tmp_path: Path) -> None:
    from pipeline.finishing import estimate_finishing
    from pipeline.manifest.model import OutputSettings

    plan = make_plan(write_job(tmp_path, {"a": texts(20), "b": texts(20, "b")}))
    audio, joined = estimate_finishing(plan, OutputSettings(), 2)
    characters = sum(c.characters for c in plan.chunks())
    assert audio == pytest.approx(characters / 14.0, rel=0.01)
    _, loud = estimate_finishing(plan, OutputSettings(loudness_lufs=-18), 2)
    _, one_core = estimate_finishing(plan, OutputSettings(loudness_lufs=-18), 1)
    _, with_book = estimate_finishing(plan, OutputSettings(loudness_lufs=-18, book="b.m4b"), 2)
    assert joined < loud < one_core
    assert with_book > loud


def test_book_command_builds_the_book_from_the_shards_chapter_files(
    tmp_path: Path, local_server: LocalServer
) -> None:
    from helpers import run_cli

    job = write_job(tmp_path, {"a": texts(2), "b": texts(2, "b"), "c": texts(2, "c")})
    body = job.read_text(encoding="utf-8")
    job.write_text(body + "output:\n  book: book.m4b\n  format: mp3\n", encoding="utf-8")
    out = tmp_path / "out"
    env = cli_env(COZE_API_TOKEN="test-token")
    early = run_cli("book", job, "--out", out)
    assert early.returncode == 2 and "chapter file(s) missing" in early.stderr
    for shard in ("1/2", "2/2"):
        done = run_cli("run", job, "--out", out, "--base-url", local_server.base_url,
                       "--progress", "none", "--shard", shard, env=env)
        assert done.returncode == 0, done.stderr
    assert not (out / "book.m4b").exists()
    built = run_cli("book", job, "--out", out)
    assert built.returncode == 0, built.stderr
    assert "book written" in built.stderr
    with av.open(str(out / "book.m4b")) as container:
        assert len(container.chapters()) == 3
    again = run_cli("book", job, "--out", out)
    assert again.returncode == 0 and "book up to date" in again.stderr


def test_a_stopped_book_makes_the_run_interrupted_not_ok() -> None:
    from pipeline.outcome import run_status
    from pipeline.report import ChapterReport

    chapters = [ChapterReport("a", None, "ok", "a.mp3", 1.0, 1, 1)]
    assert run_status(chapters, fatal=False, interrupted=True) == "ok"
    assert run_status(chapters, fatal=False, interrupted=True, book_stopped=True) == "interrupted"
    assert run_status(chapters, fatal=False, interrupted=False, book_stopped=True) == "ok"


def _measured_run_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the chapters that measured themselves (a first pass in finishing)."""
    import pipeline.audio.mp3cores as mp3cores

    calls: list[int] = []
    real = mp3cores._first_pass

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(mp3cores, "_first_pass", counted)
    return calls


@pytest.mark.anyio
async def test_answers_are_measured_as_they_arrive_and_the_chapter_is_the_same(
    tmp_path: Path, local_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipeline.arrivals

    job = write_job(tmp_path, {"long": texts(12, "delta")}, fmt="mp3")
    output = OutputOptions(format="mp3", loudness_lufs=-18.0, subtitles=("srt",))
    first_passes = _measured_run_calls(monkeypatch)
    monkeypatch.setattr(pipeline.arrivals, "LONG_CHAPTER_BYTES", 1 << 30)
    plain = await run_plan(make_plan(job), local_server, tmp_path / "plain", output=output)
    assert plain.status == "ok" and first_passes == [1]
    monkeypatch.setattr(pipeline.arrivals, "LONG_CHAPTER_BYTES", 100)
    measured = await run_plan(make_plan(job), local_server, tmp_path / "measured", output=output)
    assert measured.status == "ok" and measured.totals.requests == 12
    assert first_passes == [1]  # every answer was measured on arrival: no first pass
    for name in ("long.mp3", "long.srt"):
        same = (tmp_path / "plain" / name).read_bytes()
        assert (tmp_path / "measured" / name).read_bytes() == same
