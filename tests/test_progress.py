"""Progress reporters: JSON lines for CI, plain lines for logs, a tqdm bar, the mode switch."""

from __future__ import annotations

import io
import json

import pytest

from pipeline.progress import (
    BarProgress,
    ChapterEvent,
    JsonlProgress,
    NullProgress,
    PlainProgress,
    make_progress,
)

OK = ChapterEvent("ch01", "ok", "ch01.mp3", 12.34, None)
FAILED = ChapterEvent("ch02", "failed", None, None, "code 4200 at line l3: voice not found")


def drive(progress: PlainProgress | JsonlProgress | BarProgress) -> None:
    progress.start(chunks=3, characters=30, cached=1)
    progress.chunk_done(chapter_id="ch01", characters=10, cached=False)
    progress.retry(chapter_id="ch02", code=5000, message="internal error", delay_s=0.25)
    progress.chunk_done(chapter_id="ch02", characters=10, cached=False)
    progress.chapter_done(OK)
    progress.chapter_done(FAILED)
    progress.message("book written: out/book.m4b")
    progress.finish(status="partial", elapsed_s=1.5)


def test_jsonl_is_one_parsable_event_per_line() -> None:
    stream = io.StringIO()
    drive(JsonlProgress(stream))
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["event"] for e in events] == [
        "start", "chunk", "retry", "chunk", "chapter", "chapter", "message", "finish",
    ]  # fmt: skip
    assert all(isinstance(e["time"], float) for e in events)
    assert events[0] | {"time": 0} == {
        "event": "start", "time": 0, "chunks": 3, "characters": 30, "cached": 1,
    }  # fmt: skip
    assert events[2]["code"] == 5000 and events[2]["delay_s"] == 0.25
    assert events[4]["output"] == "ch01.mp3" and events[4]["duration_s"] == 12.34
    assert events[5]["status"] == "failed" and "4200" in events[5]["error"]
    assert events[-1]["status"] == "partial" and events[-1]["elapsed_s"] == 1.5


def test_jsonl_keeps_non_ascii_text_readable() -> None:
    stream = io.StringIO()
    JsonlProgress(stream).message("第一章 written")
    assert "第一章" in stream.getvalue()


def test_plain_prints_a_line_per_chapter_retry_and_the_end() -> None:
    stream = io.StringIO()
    drive(PlainProgress(stream, every_s=3600))
    assert stream.getvalue().splitlines() == [
        "3 chunks, 30 characters; 1 already in the cache",
        "retry in 0.2 s (ch02): code 5000: internal error",
        "chapter ch01: written ch01.mp3 (12.3 s of audio)",
        "chapter ch02: FAILED: code 4200 at line l3: voice not found",
        "book written: out/book.m4b",
        "partial: 3/3 chunks in 1.5 s",
    ]


def test_plain_prints_a_periodic_summary() -> None:
    stream = io.StringIO()
    progress = PlainProgress(stream, every_s=0.0)
    progress.start(chunks=2, characters=20, cached=0)
    progress.chunk_done(chapter_id="ch01", characters=10, cached=False)
    assert stream.getvalue().splitlines()[-1].startswith("1/2 chunks, ")


def test_bar_writes_chapter_lines_and_closes() -> None:
    stream = io.StringIO()
    drive(BarProgress(stream))
    text = stream.getvalue()
    assert "chapter ch01: written ch01.mp3 (12.3 s of audio)" in text
    assert "chapter ch02: FAILED" in text
    assert "3/3" in text  # the bar reached its total (1 cached + 2 done)
    assert text.rstrip().endswith("partial: 3/3 chunks in 1.5 s")


@pytest.mark.parametrize(
    ("mode", "tty", "kind"),
    [
        ("auto", True, BarProgress),
        ("auto", False, PlainProgress),
        ("bar", False, BarProgress),
        ("plain", True, PlainProgress),
        ("jsonl", True, JsonlProgress),
        ("none", True, NullProgress),
    ],
)
def test_make_progress_picks_by_mode_and_terminal(mode: str, tty: bool, kind: type) -> None:
    progress = make_progress(mode, stderr_is_tty=tty)
    assert type(progress) is kind


def test_make_progress_rejects_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="auto, bar, plain, jsonl, none"):
        make_progress("fancy", stderr_is_tty=False)
