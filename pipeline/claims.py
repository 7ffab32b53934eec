"""The cache's per-key claims: one lock file per cache, one locked byte per key.

A claim is a POSIX record lock (``fcntl``, F_SETLK) on one byte of ``<cache>/.claims.lock``,
at an offset drawn from the key (60 of its bits: two keys meet on one byte about never, and
then one merely waits for the other). Nothing is created or deleted per key: a claim costs
two ``fcntl`` calls, where a file per key cost an inode made and freed (on ext4, the inode
allocator's scan past recently freed inodes was a tenth of a run's CPU).

Record locks belong to a process, not to a file descriptor, and closing any descriptor of
the file drops them all. So each process opens the file once per cache folder
(``ClaimTable``, shared by every ``ChunkCache`` of that folder in the process) and keeps
its own table of the keys it holds: between processes the kernel separates claims, inside
one the table does. The kernel drops a dead process's locks however it died, and the file
is never deleted (a deleted lock file would let two runs lock two different files).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

import anyio

from pipeline.fileio import storage_error

log = logging.getLogger(__name__)

CLAIMS_FILE = ".claims.lock"
# Never through a link; never blocking on a FIFO planted at the name.
_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_SLOT_HEX = 15  # 60 bits: an offset every file system takes
_POLL_FIRST_S = 0.002
_POLL_MAX_S = 0.05
_BUSY = (errno.EACCES, errno.EAGAIN)


def _slot(key: str) -> int:
    return int(key[:_SLOT_HEX], 16)


class ClaimTable:
    """The claims this process holds in one cache folder; see the module doc."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd
        self._lock = threading.Lock()
        self._held: set[str] = set()
        self._slots: dict[int, int] = {}  # slot -> keys of ours locking it
        self.users = 0  # ChunkCache objects using the table (see _release_table)

    def try_take(self, key: str) -> bool:
        """Lock ``key`` if no one (this process included) holds it; OSError if it cannot."""
        slot = _slot(key)
        with self._lock:
            if key in self._held:
                return False
            if slot not in self._slots:
                try:
                    fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot)
                except OSError as exc:
                    if exc.errno in _BUSY:
                        return False
                    raise
            self._slots[slot] = self._slots.get(slot, 0) + 1
            self._held.add(key)
            return True

    def give_back(self, key: str) -> None:
        slot = _slot(key)
        with self._lock:
            if key not in self._held:
                return
            self._held.discard(key)
            left = self._slots.pop(slot) - 1
            if left:
                self._slots[slot] = left
            else:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, slot)
        _release_table(self, users=0)

    @property
    def idle(self) -> bool:
        return self.users <= 0 and not self._held

    def close(self) -> None:
        os.close(self._fd)


_tables: dict[tuple[int, int], ClaimTable] = {}  # by the cache folder's (device, inode)
_tables_lock = threading.Lock()


def claim_table(folder: Path, quarantine: Callable[[Path, str], object]) -> ClaimTable:
    """The process's table for the cache ``folder`` (an existing real folder), one more user.

    Anything but a regular file at the lock file's name (a link, a folder) is handed to
    ``quarantine`` and replaced. OSError when the file cannot be made or opened."""
    info = os.stat(folder)
    ident = (info.st_dev, info.st_ino)
    with _tables_lock:
        table = _tables.get(ident)
        if table is None:
            path = folder / CLAIMS_FILE
            table = _tables[ident] = ClaimTable(path, _open(path, quarantine))
        table.users += 1
        return table


def _open(path: Path, quarantine: Callable[[Path, str], object]) -> int:
    for _ in range(3):
        try:
            fd = os.open(path, _FLAGS, 0o644)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
                raise
        else:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                return fd
            os.close(fd)
        quarantine(path, "not a regular file where the claims file belongs")
    raise OSError(errno.EEXIST, "the claims file keeps being replaced", str(path))


def _release_table(table: ClaimTable, users: int) -> None:
    """``users`` fewer users of ``table``; closed (dropping no claim) once it has none."""
    with _tables_lock:
        table.users -= users
        if not table.idle:
            return
        for ident, known in list(_tables.items()):
            if known is table:
                del _tables[ident]
                table.close()


def release_table(table: ClaimTable) -> None:
    """A ``ChunkCache`` is done with ``table``; claims still held keep it open."""
    _release_table(table, users=1)


def _forget_after_fork() -> None:
    # A child holds none of its parent's record locks: it starts its own tables.
    _tables.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


class KeyClaim:
    """The right to buy one cache key's answer, shared by every process using the cache.

    Take it before sending the request for the key and keep it until the answer is
    committed to the cache (or has failed for good); whoever gets it next must look the key
    up in the cache again before buying. The kernel releases a claim whose holder dies.

    ``async with claim:`` waits by polling (the event loop is never blocked); ``with
    claim:`` waits the same way in a worker thread. ``timeout_s`` bounds the wait: past it
    the claim goes on unheld (``held`` is False) and a warning is logged, so a stuck holder
    costs at most a second payment, never a hang.
    """

    def __init__(
        self, table: ClaimTable, key: str, timeout_s: float | None = None, owner: object = None
    ) -> None:
        self._owner = owner  # the cache: kept alive (and its table open) while this lives
        self._table = table
        self._key = key
        self._timeout_s = timeout_s
        self._held = False

    @property
    def path(self) -> Path:
        """The cache's claims file."""
        return self._table.path

    @property
    def held(self) -> bool:
        return self._held

    def try_acquire(self) -> bool:
        """Take the claim if it is free; StorageError if the cache cannot hold claims."""
        if self._held:
            raise RuntimeError(f"the claim on {self._key} is already held by this claim")
        try:
            self._held = self._table.try_take(self._key)
        except OSError as exc:
            raise storage_error(exc, "claim a cache key in", self.path.parent) from exc
        return self._held

    def release(self) -> None:
        if self._held:
            self._held = False
            self._table.give_back(self._key)

    async def __aenter__(self) -> KeyClaim:
        waits = self._waits()
        while not self.try_acquire():
            if (wait := next(waits, None)) is None:
                break  # timed out: on without the claim
            await anyio.sleep(wait)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __enter__(self) -> KeyClaim:
        waits = self._waits()
        while not self.try_acquire():
            if (wait := next(waits, None)) is None:
                break  # timed out: on without the claim
            time.sleep(wait)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def _waits(self) -> Iterator[float]:
        """The pauses between tries, doubling up to a cap; they end, with a warning, once the
        timeout has passed (then the caller goes on without the claim)."""
        delay = _POLL_FIRST_S
        deadline = None if self._timeout_s is None else time.monotonic() + self._timeout_s
        while not _past(deadline):
            yield delay
            delay = min(delay * 2, _POLL_MAX_S)
        self._give_up()

    def _give_up(self) -> None:
        log.warning(
            "another run has held the claim on %s for over %g s: going on without it",
            self._key[:16],
            self._timeout_s,
        )


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


__all__ = ["CLAIMS_FILE", "ClaimTable", "KeyClaim", "claim_table", "release_table"]
