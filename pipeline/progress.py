"""Progress reporting: a tqdm bar, plain log lines, or JSON lines for CI.

The runner calls one ``Progress`` object; which one is the user's choice (``--progress``).
Bars and plain lines go to stderr so that stdout stays clean for what a user pipes; JSON lines
go to stdout because that is what a CI step parses. A reader that goes away (``| head -1``)
silences the printer, never the run: report.json is still written and the exit status is the
run's own.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TextIO

if TYPE_CHECKING:
    from tqdm import tqdm

PROGRESS_MODES = ("auto", "bar", "plain", "jsonl", "none")


@dataclass(frozen=True)
class ChapterEvent:
    chapter_id: str
    status: str  # ok | failed
    output: str | None
    duration_s: float | None
    error: str | None


class Progress(Protocol):
    def start(self, *, chunks: int, characters: int, cached: int) -> None: ...
    def chunk_done(self, *, chapter_id: str, characters: int, cached: bool) -> None: ...
    def retry(self, *, chapter_id: str, code: int, message: str, delay_s: float) -> None: ...
    def chapter_done(self, event: ChapterEvent) -> None: ...
    def message(self, text: str) -> None: ...
    def finish(self, *, status: str, elapsed_s: float) -> None: ...


class NullProgress:
    def start(self, *, chunks: int, characters: int, cached: int) -> None:
        pass

    def chunk_done(self, *, chapter_id: str, characters: int, cached: bool) -> None:
        pass

    def retry(self, *, chapter_id: str, code: int, message: str, delay_s: float) -> None:
        pass

    def chapter_done(self, event: ChapterEvent) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def finish(self, *, status: str, elapsed_s: float) -> None:
        pass


class Outlet:
    """A text stream that goes quiet for good once its reader has gone away (EPIPE)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.gone = False

    def write(self, text: str) -> None:
        if self.gone:
            return
        with self.guard():
            self.stream.write(text)
            self.stream.flush()

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Run a write (ours or tqdm's); EPIPE marks the reader gone, later writes go nowhere."""
        try:
            yield
        except OSError as exc:
            if not isinstance(exc, BrokenPipeError) and exc.errno != errno.EPIPE:
                raise
            self.gone = True
            self._to_nowhere()

    def _to_nowhere(self) -> None:
        # Text still buffered in the stream, later prints and Python's flush at exit then go
        # to /dev/null instead of raising again and ending the run before its report.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)


def _chapter_line(event: ChapterEvent) -> str:
    if event.status == "ok":
        seconds = f" ({event.duration_s:.1f} s of audio)" if event.duration_s is not None else ""
        return f"chapter {event.chapter_id}: written {event.output}{seconds}"
    return f"chapter {event.chapter_id}: FAILED: {event.error}"


class PlainProgress:
    """One line per chapter and a summary line every ``every_s`` seconds: for logs."""

    def __init__(self, stream: TextIO | None = None, every_s: float = 10.0) -> None:
        self._stream = stream or sys.stderr
        self._out = Outlet(self._stream)
        self._every_s = every_s
        self._total = 0
        self._done = 0
        self._chars = 0
        self._started = time.monotonic()
        self._last = self._started

    def _print(self, text: str) -> None:
        self._out.write(text + "\n")

    def start(self, *, chunks: int, characters: int, cached: int) -> None:
        self._total = chunks
        self._done = cached
        self._started = self._last = time.monotonic()
        self._print(f"{chunks} chunks, {characters} characters; {cached} already in the cache")

    def chunk_done(self, *, chapter_id: str, characters: int, cached: bool) -> None:
        self._done += 1
        self._chars += characters
        now = time.monotonic()
        if now - self._last >= self._every_s:
            self._last = now
            rate = self._chars / max(now - self._started, 1e-9)
            self._print(f"{self._done}/{self._total} chunks, {rate:.0f} characters/s")

    def retry(self, *, chapter_id: str, code: int, message: str, delay_s: float) -> None:
        self._print(f"retry in {delay_s:.1f} s ({chapter_id}): code {code}: {message}")

    def chapter_done(self, event: ChapterEvent) -> None:
        self._print(_chapter_line(event))

    def message(self, text: str) -> None:
        self._print(text)

    def quality_flag(self, flag: dict[str, Any]) -> None:
        """A chunk the quality gate flagged (``gatekeeper.Flag.to_json``); not in ``Progress``:
        the gatekeeper falls back on ``message`` for a progress without it."""
        rules = ", ".join(flag["rules"])
        self._print(
            f"quality: {rules} at {flag['file']}:{flag['file_line']} (chapter {flag['chapter']}, "
            f"line {flag['line']}); the best of {flag['requests']} answers was kept"
        )

    def finishing(self, *, chapter_id: str, audio_s: float, done: bool) -> None:
        """A chapter's finishing: audio seconds done (a line every ``every_s`` at most)."""
        # The chapter line says when it is done: only the work in between is shown here.
        if not done:
            self._working(f"finishing {chapter_id}: {audio_s:.0f} s of audio")

    def book(self, *, name: str, audio_s: float, done: bool) -> None:
        """The book being built: audio seconds done (a line every ``every_s`` at most)."""
        if not done:
            self._working(f"building {name}: {audio_s:.0f} s of audio")

    def _working(self, text: str) -> None:
        now = time.monotonic()
        if now - self._last >= self._every_s:
            self._last = now
            self._print(text)

    def finish(self, *, status: str, elapsed_s: float) -> None:
        self._print(f"{status}: {self._done}/{self._total} chunks in {elapsed_s:.1f} s")


class BarProgress(PlainProgress):
    """A tqdm bar for the job (chunks, characters per second, ETA); chapter lines above it."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._bar: tqdm[Any] | None = None

    def _print(self, text: str) -> None:
        if self._bar is not None:
            with self._out.guard():
                self._bar.write(text, file=self._stream)
        else:
            super()._print(text)

    def start(self, *, chunks: int, characters: int, cached: int) -> None:
        super().start(chunks=chunks, characters=characters, cached=cached)
        from tqdm import tqdm  # only a bar needs it: not on every run's way to its first request

        self._bar = tqdm(
            total=chunks, initial=cached, unit="chunk", file=self._stream, dynamic_ncols=True
        )

    def chunk_done(self, *, chapter_id: str, characters: int, cached: bool) -> None:
        self._done += 1
        self._chars += characters
        if self._bar is not None:
            rate = self._chars / max(time.monotonic() - self._started, 1e-9)
            self._bar.set_postfix_str(f"{rate:.0f} chars/s", refresh=False)
            with self._out.guard():
                self._bar.update(1)

    def _working(self, text: str) -> None:
        # Finishing and book progress: on the bar when there is one, else a line now and then.
        if self._bar is None:
            super()._working(text)
            return
        with self._out.guard():
            self._bar.set_postfix_str(text)

    def finish(self, *, status: str, elapsed_s: float) -> None:
        if self._bar is not None:
            with self._out.guard():
                self._bar.close()
            self._bar = None
        super().finish(status=status, elapsed_s=elapsed_s)


class JsonlProgress:
    """One JSON object per line and event, with a timestamp: for CI."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._out = Outlet(stream or sys.stdout)

    def _emit(self, event: str, **fields: Any) -> None:
        record = {"event": event, "time": round(time.time(), 3), **fields}
        self._out.write(json.dumps(record, ensure_ascii=False) + "\n")

    def start(self, *, chunks: int, characters: int, cached: int) -> None:
        self._emit("start", chunks=chunks, characters=characters, cached=cached)

    def chunk_done(self, *, chapter_id: str, characters: int, cached: bool) -> None:
        self._emit("chunk", chapter=chapter_id, characters=characters, cached=cached)

    def retry(self, *, chapter_id: str, code: int, message: str, delay_s: float) -> None:
        self._emit("retry", chapter=chapter_id, code=code, message=message, delay_s=delay_s)

    def chapter_done(self, event: ChapterEvent) -> None:
        self._emit(
            "chapter",
            chapter=event.chapter_id,
            status=event.status,
            output=event.output,
            duration_s=event.duration_s,
            error=event.error,
        )

    def message(self, text: str) -> None:
        self._emit("message", text=text)

    def quality_flag(self, flag: dict[str, Any]) -> None:
        self._emit("quality_flag", **flag)

    def finishing(self, *, chapter_id: str, audio_s: float, done: bool) -> None:
        self._emit("finishing", chapter=chapter_id, audio_s=round(audio_s, 1), done=done)

    def book(self, *, name: str, audio_s: float, done: bool) -> None:
        self._emit("book", name=name, audio_s=round(audio_s, 1), done=done)

    def finish(self, *, status: str, elapsed_s: float) -> None:
        self._emit("finish", status=status, elapsed_s=round(elapsed_s, 3))


def make_progress(mode: str, *, stderr_is_tty: bool) -> Progress:
    if mode == "auto":
        mode = "bar" if stderr_is_tty else "plain"
    if mode == "bar":
        return BarProgress()
    if mode == "plain":
        return PlainProgress()
    if mode == "jsonl":
        return JsonlProgress()
    if mode == "none":
        return NullProgress()
    raise ValueError(f"progress mode {mode!r} is not one of {', '.join(PROGRESS_MODES)}")
