"""The chunk cache's file-level work: entries read and written without following links,
staging folders of live and dead processes, moving damage aside, and batched syncs.

Nothing here follows a symbolic link where it writes or reads an entry: members are opened
with O_NOFOLLOW relative to the entry's own folder, and every folder of ours is checked
with ``lstat`` before use.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import itertools
import logging
import os
import re
import secrets
import shutil
import stat
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pipeline.cacheprune import prune_quarantine
from pipeline.errors import StorageError
from pipeline.fileio import FILE_MODE, NEW_FILE_FLAGS, storage_error, write_all
from pipeline.locks import lock_file, unlock_and_remove

log = logging.getLogger(__name__)

AUDIO_STEM = "chunk"
CHECKSUM_NAME = "chunk.sha256"
KEY_NAME = "chunk.key"  # the key an entry was stored under; entries before it have none
STAGING = ".staging"
QUARANTINE = ".quarantine"
CLAIMS = ".claims"  # older versions' claim files, one per key: only cleaned up now
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_SMALL = 512  # the most a checksum or key file may hold
_CHECKSUM_LINE = re.compile(r"([0-9a-f]{64})  (chunk\.[a-z0-9]{1,10})\n")
_LEGACY_TEMP = re.compile(r"\.(tmp|trash)-[0-9a-f]{1,16}-.*")


class CorruptEntry(Exception):
    """Something at an entry's path that is not a valid entry for its key."""


# --- reading and writing entries ---------------------------------------------------------


def read_entry(entry: Path, key: str) -> Path:
    """The audio file of the valid entry at ``entry``; FileNotFoundError when there is
    nothing there, CorruptEntry when what is there is not a valid entry for ``key``."""
    info = os.lstat(entry)
    if stat.S_ISLNK(info.st_mode):
        raise CorruptEntry("a symbolic link, not an entry")
    if not stat.S_ISDIR(info.st_mode):
        raise CorruptEntry("a file, not an entry folder")
    try:
        dfd = os.open(entry, _DIR_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise CorruptEntry(f"unreadable: {exc.strerror}") from None
    try:
        digest, name = _parse_checksum(_member(dfd, CHECKSUM_NAME, _SMALL))
        data = _member(dfd, name, None)
        if hashlib.sha256(data).hexdigest() != digest:
            raise CorruptEntry(f"{name} does not match its checksum ({len(data)} bytes)")
        owner = _optional_member(dfd, KEY_NAME)
        if owner is not None and owner != f"{key}\n".encode("ascii"):
            raise CorruptEntry("the entry of another key")
    finally:
        os.close(dfd)
    return entry / name


def _member(dfd: int, name: str, limit: int | None) -> bytes:
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=dfd)
    except FileNotFoundError:
        raise CorruptEntry(f"{name} missing") from None
    except OSError as exc:
        what = "a symbolic link" if exc.errno == errno.ELOOP else f"unreadable: {exc.strerror}"
        raise CorruptEntry(f"{name} is {what}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise CorruptEntry(f"{name} is not a regular file")
        if limit is not None and info.st_size > limit:
            raise CorruptEntry(f"{name} is {info.st_size} bytes")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    except OSError as exc:
        raise CorruptEntry(f"{name} unreadable: {exc.strerror}") from None
    finally:
        os.close(fd)


def _optional_member(dfd: int, name: str) -> bytes | None:
    try:
        os.lstat(name, dir_fd=dfd)
    except FileNotFoundError:
        return None
    return _member(dfd, name, _SMALL)


def _parse_checksum(raw: bytes) -> tuple[str, str]:
    match = _CHECKSUM_LINE.fullmatch(raw.decode("ascii", "replace"))
    if match is None:
        raise CorruptEntry("checksum file malformed")
    return match.group(1), match.group(2)


def write_entry(folder: Path, key: str, audio: bytes, ext: str) -> None:
    """The files of an entry in the new, empty ``folder``; no fsync (see ``SyncBatcher``)."""
    name = f"{AUDIO_STEM}.{ext}"
    checksum = f"{hashlib.sha256(audio).hexdigest()}  {name}\n".encode("ascii")
    dfd = os.open(folder, _DIR_FLAGS)
    try:
        owner = f"{key}\n".encode("ascii")
        for member, data in ((name, audio), (CHECKSUM_NAME, checksum), (KEY_NAME, owner)):
            fd = os.open(member, NEW_FILE_FLAGS, FILE_MODE, dir_fd=dfd)
            try:
                write_all(fd, data)
            finally:
                os.close(fd)
    finally:
        os.close(dfd)


# --- folders of ours ---------------------------------------------------------------------


def ensure_folder(path: Path, quarantine: Callable[[Path, str], object]) -> None:
    """``path`` as a real folder: anything else at its name (a file, a link) is moved aside."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    if info is not None and not stat.S_ISDIR(info.st_mode):
        quarantine(path, "a file or link where a cache folder belongs")
    try:
        os.mkdir(path)
    except FileExistsError:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            raise StorageError(
                errno.EEXIST, f"cannot use {path}: it keeps being replaced"
            ) from None
    except OSError as exc:
        raise storage_error(exc, "create the cache folder", path) from exc


def move_aside(root: Path, path: Path, reason: str) -> Path:
    """Move ``path`` (anything, a link itself, never what it points to) into the cache's
    quarantine folder; its new path. OSError when the cache cannot be changed."""
    folder = root / QUARANTINE
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            os.unlink(folder)  # our own name, never a user's: a link there is not followed
    with contextlib.suppress(FileExistsError):
        os.mkdir(folder)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = folder / f"{path.name[:64]}-{stamp}-{secrets.token_hex(4)}"
    os.rename(path, target)
    log.warning("cache: %s was %s: moved to %s", path, reason, target)
    return target


# --- staging: where a process builds entries, and what dead processes left --------------


class Staging:
    """A process's own folder for entries being built, under ``<cache>/.staging``.

    Its lock file is held (``flock``) for the life of the process: a staging folder whose
    lock is free belongs to a dead process, and ``clean_leftovers`` removes it.
    """

    def __init__(self, root: Path) -> None:
        base = root / STAGING
        fd: int | None = None
        while fd is None:
            name = f"{os.getpid()}-{secrets.token_hex(4)}"
            try:
                fd = lock_file(base / f"{name}.lock")
            except OSError as exc:
                raise storage_error(exc, "use the cache folder", root) from exc
        self._lock_fd: int | None = fd
        self.folder = base / name
        self._lock_path = base / f"{name}.lock"
        self._count = itertools.count()
        try:
            os.mkdir(self.folder)
        except OSError as exc:
            self.close()
            raise storage_error(exc, "use the cache folder", root) from exc

    def new_folder(self, key: str) -> Path:
        path = self.folder / f"{key}.{next(self._count)}"
        os.mkdir(path)
        return path

    def close(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            unlock_and_remove(fd, self._lock_path)


def clean_leftovers(root: Path) -> int:
    """Remove what dead processes left in the cache: staging folders, older versions' claim
    files and temp folders; and what the quarantine holds beyond its bounds (``cacheprune``).
    How many things were removed; never raises."""
    removed = prune_quarantine(root / QUARANTINE)
    with contextlib.suppress(OSError):
        removed += _clean_staging(root / STAGING)
    with contextlib.suppress(OSError):
        removed += _clean_locks(root / CLAIMS)
    with contextlib.suppress(OSError):
        for shard in os.scandir(root):
            if len(shard.name) == 2 and shard.is_dir(follow_symlinks=False):
                removed += _clean_legacy(Path(shard.path))
    return removed


def _clean_staging(base: Path) -> int:
    removed = 0
    names = {e.name for e in os.scandir(base)}
    for name in sorted(n for n in names if n.endswith(".lock")):
        fd = _free_lock(base / name)
        if fd is None:
            continue
        shutil.rmtree(base / name[: -len(".lock")], ignore_errors=True)
        unlock_and_remove(fd, base / name)
        removed += 1
    for name in names:
        # A folder whose lock file is gone: its process died between the two.
        if not name.endswith(".lock") and f"{name}.lock" not in names:
            shutil.rmtree(base / name, ignore_errors=True)
            removed += 1
    return removed


def _clean_locks(base: Path) -> int:
    removed = 0
    if not stat.S_ISDIR(os.lstat(base).st_mode):
        return 0  # a link there is never followed
    for entry in os.scandir(base):
        fd = _free_lock(Path(entry.path))
        if fd is not None:
            unlock_and_remove(fd, Path(entry.path))
            removed += 1
    return removed


def _free_lock(path: Path) -> int | None:
    try:
        return lock_file(path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(path)  # a link or junk under a name of ours
        return None


def _clean_legacy(shard: Path) -> int:
    removed = 0
    for entry in os.scandir(shard):
        if _LEGACY_TEMP.fullmatch(entry.name):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
            removed += 1
    return removed


# --- durability against power loss, one sync for many entries ---------------------------


class SyncBatcher:
    """Makes committed entries durable against power loss, one sync for many of them.

    A commit is write + rename: a killed process loses nothing committed, since the data is
    in the kernel. Against a power cut, entries are synced in batches: once ``every``
    entries or ``interval_s`` seconds have been committed since the last sync (checked at
    each commit), and by ``flush()``. A power cut can lose the entries committed since the
    last sync; such an entry comes back missing, empty or garbled, fails its checksum, is
    moved aside and bought again. Synced entries are safe.
    """

    def __init__(self, root: Path, interval_s: float = 1.0, every: int = 256) -> None:
        self._root = root
        self._interval_s = interval_s
        self._every = every
        self._pending: list[Path] = []
        self._last = time.monotonic()
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self.syncs = 0

    def committed(self, entry: Path) -> None:
        with self._lock:
            self._pending.append(entry)
            due = len(self._pending) >= self._every
            due = due or time.monotonic() - self._last >= self._interval_s
        if due:
            self.flush()

    def flush(self) -> None:
        """Sync every entry committed so far; StorageError if the disk refuses."""
        with self._flushing:
            with self._lock:
                batch, self._pending = self._pending, []
                self._last = time.monotonic()
            if not batch:
                return
            try:
                if not _syncfs(self._root):
                    _fsync_each(batch)
            except OSError as exc:
                raise storage_error(exc, "make the cache durable in", self._root) from exc
            self.syncs += 1


@functools.cache
def _libc_syncfs() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # only here: it costs start-up time, and only Linux has syncfs

    syncfs: Callable[[int], int] | None = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
    return syncfs


def _syncfs(root: Path) -> bool:
    """One ``syncfs(2)`` for the cache's file system; False where there is none."""
    syncfs = _libc_syncfs()
    if syncfs is None:
        return False
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if syncfs(fd) != 0:
            import ctypes

            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
    finally:
        os.close(fd)
    return True


def _fsync_each(entries: list[Path]) -> None:
    folders = {e.parent for e in entries}
    for entry in entries:
        for member in os.scandir(entry):
            _fsync(member.path, os.O_RDONLY | os.O_NOFOLLOW)
        folders.add(entry)
    for folder in folders:
        _fsync(str(folder), _DIR_FLAGS)


def _fsync(path: str, flags: int) -> None:
    fd = os.open(path, flags | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
