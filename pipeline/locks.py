"""Locks on files (``flock``): the output folder's lock and the cache's staging folders.

The kernel drops an ``flock`` when its holder exits, however it exits, so a lock left by a
killed run never blocks the next one. A lock file that may be deleted is only trusted after
checking, once locked, that the name still leads to the locked file (``lock_file``): a
holder deletes its file while still holding it, and a waiter that then gets the lock on the
deleted file starts again.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import stat
import time
from pathlib import Path
from types import TracebackType

from pipeline.errors import ConfigError
from pipeline.fileio import explain, remove_leftover_temps

log = logging.getLogger(__name__)

LOCK_NAME = ".tts-pipeline.lock"
# Never through a link; never blocking on a FIFO planted at the name.
LOCK_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def lock_file(path: Path) -> int | None:
    """Open (creating) and ``flock`` the regular file ``path`` without waiting: its
    descriptor, or None when another holder has it. OSError when it cannot be opened (a
    symbolic link at ``path`` gives ELOOP, another non-file EEXIST)."""
    for _ in range(16):
        fd = os.open(path, LOCK_FLAGS, 0o644)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EEXIST, "not a regular file", str(path))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            if _still_named(fd, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the holder before us deleted it: lock the file now at that name
    raise OSError(errno.EAGAIN, "lock file keeps being replaced", str(path))


def _still_named(fd: int, path: Path) -> bool:
    mine = os.fstat(fd)
    try:
        named = os.lstat(path)
    except FileNotFoundError:
        return False
    return (mine.st_dev, mine.st_ino) == (named.st_dev, named.st_ino)


def unlock_and_remove(fd: int, path: Path) -> None:
    """Delete a lock file we hold, then release it (in that order: see the module doc)."""
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    finally:
        os.close(fd)


class OutputLock:
    """Exclusive use of an output directory by one run, with ``flock`` on a lock file.

    The file is opened without following a symbolic link and must be a regular file: a link
    or anything else at its name is refused with a ConfigError, and nothing it points to is
    touched. It is never deleted (deleting a flock'd file lets two runs lock two different
    files of the same name); it holds the holder's pid and start time for the message a
    second run gets. Once locked, temp files a killed writer left in the folder are removed.
    """

    def __init__(self, directory: Path) -> None:
        self._dir = Path(directory)
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        return self._dir / LOCK_NAME

    def __enter__(self) -> OutputLock:
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this OutputLock")
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise ConfigError(_busy_message(self._dir, holder)) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            _write_owner(fd)
        except OSError as exc:
            os.close(fd)
            raise self._unusable(exc) from exc
        self._fd = fd
        remove_leftover_temps(self._dir)
        return self

    def _open(self) -> int:
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, LOCK_FLAGS, 0o644)
        except OSError as exc:
            # Not writable, under a file, on a full disk, a link: nothing can be kept, so
            # say so before anything is sent.
            raise self._unusable(exc) from exc
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ConfigError(
                f"cannot use the output directory {self._dir}: {self.path} is not a regular "
                "file; remove it"
            )
        return fd

    def _unusable(self, exc: OSError) -> ConfigError:
        if exc.errno == errno.ELOOP:
            return ConfigError(
                f"cannot use the output directory {self._dir}: {self.path} is a symbolic "
                "link; remove it (nothing is written through it)"
            )
        return ConfigError(f"cannot use the output directory {self._dir}: {explain(exc)}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            # A finished run leaves no pid behind to mislead anyone; a full disk cannot stop
            # that, and must not hide the run's own outcome.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing releases the flock


def _busy_message(directory: Path, pid: int | None) -> str:
    who = "another tts-pipeline run" if pid is None else f"another tts-pipeline run (pid {pid})"
    return f"{who} is using {directory}; wait for it or use another --out"


def _write_owner(fd: int) -> None:
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}\nstarted {started}\n".encode("ascii"), 0)


def _read_pid(fd: int) -> int | None:
    # The holder writes its pid just after locking: a racing reader may find the file empty.
    try:
        text = os.pread(fd, 256, 0).decode("ascii", "replace")
    except OSError:
        return None
    match = re.search(r"^pid (\d+)$", text, re.MULTILINE)
    return int(match.group(1)) if match else None
