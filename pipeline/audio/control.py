"""Progress and cancellation for the finishing functions (join, process, subtitles, book).

Every finishing function takes an optional ``progress`` callback, called with the seconds of
audio done so far, and an optional ``cancel`` check (a callable returning True, or a
``threading.Event``). The check is made after every block of work, a block being at most
about a second of audio (a few milliseconds of work), so a request to stop is seen well
within half a second. Stopping raises :class:`FinishCancelled`; the file being written is
removed by its temp-file-and-rename and nothing appears under its final name.

The callback and the check are called from the thread doing the work: a runner finishing
chapters in worker threads must make them thread-safe (``threading.Event`` is).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pipeline.errors import PipelineError

ProgressFn = Callable[[float], None]
CancelCheck = Callable[[], bool] | threading.Event

# Progress is reported at most this often: a callback per decoded block would be thousands.
_PROGRESS_INTERVAL_S = 0.2


class FinishCancelled(PipelineError):
    """Finishing stopped because it was asked to; the output was not written."""


def is_cancelled(cancel: CancelCheck | None) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


class Watch:
    """One finishing job's progress reports and cancellation checks.

    ``weight`` scales the audio seconds of a pass into the seconds reported: a chapter read
    twice (loudness measurement, then encoding) reports each pass at half weight, so the
    figure grows with the work done and ends at the chapter's length.
    """

    def __init__(
        self, progress: ProgressFn | None, cancel: CancelCheck | None, what: str = ""
    ) -> None:
        self._progress = progress
        self._cancel = cancel
        self._what = what
        self._base = 0.0
        self._weight = 1.0
        self._done = 0.0  # what is reported: never less than before
        self._raw = 0.0  # the work's own count, which restart() takes back to 0
        self._floor = 0.0
        self._last_report = 0.0

    def start_pass(self, weight: float) -> None:
        """Begin a pass over the audio; earlier passes stay counted."""
        self._base = self._raw
        self._weight = weight

    def restart(self) -> None:
        """The work begins again (done another way): what was reported is not taken back."""
        self._floor = self._done
        self._raw = self._base = 0.0
        self._weight = 1.0

    def check(self) -> None:
        """Raise FinishCancelled when the cancel check says so."""
        if is_cancelled(self._cancel):
            suffix = f": {self._what}" if self._what else ""
            raise FinishCancelled(f"finishing cancelled{suffix}")

    def advance(self, pass_seconds: float) -> None:
        """``pass_seconds`` of audio are done in the current pass; check, maybe report."""
        self.check()
        self._raw = self._base + pass_seconds * self._weight
        self._done = max(self._floor, self._raw)
        if self._progress is None:
            return
        now = time.monotonic()
        if now - self._last_report >= _PROGRESS_INTERVAL_S:
            self._last_report = now
            self._progress(self._done)

    def complete(self, seconds: float) -> None:
        """The job is done and ``seconds`` long: report that, whatever the interval."""
        self._done = max(self._done, seconds)
        if self._progress is not None:
            self._progress(self._done)

    @property
    def done(self) -> float:
        return self._done
