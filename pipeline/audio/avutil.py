"""The one place where PyAV's exceptions become pipeline errors, and its log is read."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import av
import av.logging

from pipeline.audio.model import AudioError

_log_lock = threading.Lock()
_log_users = 0


@contextlib.contextmanager
def av_errors(what: str) -> Iterator[None]:
    """Turn FFmpeg failures (and PyAV's value checks on bad media) into AudioError."""
    try:
        yield
    except av.error.FFmpegError as e:
        raise AudioError(f"{what}: {e}") from e
    except (ValueError, EOFError) as e:
        # PyAV raises ValueError for unsupported layouts/formats found in a file's headers.
        raise AudioError(f"{what}: {e}") from e


@contextlib.contextmanager
def captured_log(level: int = av.logging.INFO) -> Iterator[list[tuple[int, str, str]]]:
    """FFmpeg's log lines of this thread while inside, as (level, name, message).

    FFmpeg's log level is process-wide: it is raised while any thread captures and put back
    when the last one leaves. Lines from other threads at that moment go to Python logging.
    """
    global _log_users
    with _log_lock:
        if _log_users == 0:
            av.logging.set_level(level)
            # PyAV drops a line equal to the previous one: two equal measurements in a row
            # would lose the second.
            av.logging.set_skip_repeated(False)
        _log_users += 1
    try:
        with av.logging.Capture() as logs:
            yield logs
    finally:
        with _log_lock:
            _log_users -= 1
            if _log_users == 0:
                av.logging.set_level(None)
                av.logging.set_skip_repeated(True)
