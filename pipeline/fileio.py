"""Files we write: whole or not at all, and never through a symbolic link.

Every output writer (chapters, subtitles, books, clips, report.json, JUnit, merged reports)
goes through one of:

- ``atomic_path(path)``: a temp path beside ``path`` for writers that need a file name (an
  encoder); on success it is fsynced and renamed onto ``path``.
- ``atomic_open(path)``: the same with the temp file already open (``wb``); what the
  ``atomic_write_*`` helpers use.
- ``append_text(path, text)``: appending to a file other steps also write (a CI summary).
- ``publish(src, target)``: moving a finished file of ours onto a user-given name.

The temp file is created with O_EXCL | O_NOFOLLOW in the target's folder (one file system,
so the rename is atomic); a final name that is a symbolic link, a folder or anything but a
regular file is refused before anything is written. Every OSError of these steps becomes a
``StorageError``: one line naming the path, the reason and the fix.

A temp file is named ``.<name>.<12 hex>.tmp``; one left by a killed run is removed by
``remove_leftover_temps`` (the output lock calls it on the folder it locks).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from pipeline.errors import StorageError


def _read_umask() -> int:
    # os.umask can only be read by setting it; done once, at import, before any thread runs.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# A finished output gets the mode a plain open() would give it.
FILE_MODE = 0o666 & ~_read_umask()
NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{12}\.tmp")
_NAME_BYTES = 96  # of the target's name kept in its temp name: NAME_MAX is 255 bytes

_ADVICE = {
    errno.ENOSPC: "free some space or choose another folder",
    errno.EDQUOT: "free some space or choose another folder",
    errno.EROFS: "the file system is read-only: choose another folder",
    errno.EACCES: "allow writing there or choose another folder",
    errno.EPERM: "allow writing there or choose another folder",
    errno.ELOOP: "remove the symbolic link or choose another name",
    errno.EISDIR: "remove that folder or choose another name",
    errno.ENOTDIR: "a file is where a folder belongs: move it or choose another folder",
    errno.EEXIST: "move it away or choose another name",
}


def storage_error(exc: OSError, action: str, path: Path | str) -> StorageError:
    """``exc`` as one clear line: ``cannot <action> <path>: <reason>; <fix>``."""
    if isinstance(exc, StorageError):
        return exc
    return StorageError(exc.errno or errno.EIO, f"cannot {action} {path}: {explain(exc)}")


def explain(exc: OSError) -> str:
    """Why an OSError happened and, when there is one, the fix: ``reason; fix``."""
    reason = exc.strerror or str(exc)
    advice = _ADVICE.get(exc.errno or 0)
    return f"{reason}; {advice}" if advice else reason


def refused(path: Path | str, what: str, code: int) -> StorageError:
    """A path where something that is not ours to write through is in the way."""
    return StorageError(code, f"refusing to write {path}: it is {what}; {_ADVICE[code]}")


def check_target(path: Path) -> None:
    """StorageError unless ``path`` is absent or a regular file (a name we may replace)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise storage_error(exc, "write", path) from exc
    if stat.S_ISLNK(info.st_mode):
        raise refused(path, "a symbolic link", errno.ELOOP)
    if stat.S_ISDIR(info.st_mode):
        raise refused(path, "a folder", errno.EISDIR)
    if not stat.S_ISREG(info.st_mode):
        raise refused(path, "not a regular file", errno.EEXIST)


def make_dirs(directory: Path) -> None:
    """``mkdir -p``, with its failures (a file in the way, read-only...) as StorageError."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise refused(directory, "not a folder", errno.ENOTDIR) from exc
    except OSError as exc:
        raise storage_error(exc, "create the folder", directory) from exc


def write_all(fd: int, data: bytes | memoryview) -> None:
    """``os.write`` until every byte is written (a write may be short)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _temp_name(path: Path) -> Path:
    stem = path.name.encode("utf-8", "surrogateescape")[:_NAME_BYTES]
    name = stem.decode("utf-8", "ignore")
    return path.with_name(f".{name}.{secrets.token_hex(6)}.tmp")


def _create_temp(path: Path) -> tuple[Path, int]:
    """A new, empty temp file beside ``path``, and its descriptor open for writing."""
    for _ in range(8):
        tmp = _temp_name(path)
        try:
            return tmp, os.open(tmp, NEW_FILE_FLAGS, FILE_MODE)
        except FileExistsError:
            continue  # a name taken by chance (or planted): draw another
        except OSError as exc:
            raise storage_error(exc, "write", path) from exc
    raise StorageError(errno.EEXIST, f"cannot write {path}: no free temporary name beside it")


def new_temp_beside(path: Path) -> Path:
    """A new, empty temp file beside ``path`` for a writer's scratch data; the caller removes it.

    Named like every temp file here, so one that a killed run left is removed with the rest.
    """
    tmp, fd = _create_temp(path)
    os.close(fd)
    return tmp


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _commit(fd: int, tmp: Path, path: Path) -> None:
    """fsync the temp file through ``fd``, then rename it onto ``path``."""
    try:
        os.fsync(fd)
        check_target(path)  # again: something may have appeared while we wrote
        os.replace(tmp, path)
    except OSError as exc:
        raise storage_error(exc, "write", path) from exc
    _fsync_dir(path.parent)


def _remove(tmp: Path) -> None:
    with contextlib.suppress(OSError):
        tmp.unlink()


@contextlib.contextmanager
def atomic_open(path: Path) -> Iterator[BinaryIO]:
    """Yield a new temp file (``wb``) beside ``path``; on success it replaces ``path``.

    On any error the temp file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    check_target(path)
    make_dirs(path.parent)
    tmp, fd = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            try:
                f.flush()
            except OSError as exc:
                raise storage_error(exc, "write", path) from exc
            _commit(fd, tmp, path)
    except BaseException:
        _remove(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a new, empty temp path beside ``path`` for a writer that needs a file name;
    on success it is fsynced and renamed onto ``path``.

    On any error the temp file is removed and ``path`` is left as it was. Errors of the
    caller's own writes pass through as they are.
    """
    path = Path(path)
    check_target(path)
    make_dirs(path.parent)
    tmp, fd = _create_temp(path)
    os.close(fd)
    try:
        yield tmp
        try:
            # The writer may have replaced the file by name: only ever sync a regular file.
            fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise storage_error(exc, "write", path) from exc
        try:
            _commit(fd, tmp, path)
        finally:
            os.close(fd)
    except BaseException:
        _remove(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_open(path) as f:
        try:
            f.write(data)
        except OSError as exc:
            raise storage_error(exc, "write", path) from exc


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def append_text(path: Path, text: str) -> None:
    """Append ``text`` (UTF-8) to a regular file, creating it; never through a link or FIFO."""
    path = Path(path)
    check_target(path)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, FILE_MODE)
    except OSError as exc:
        raise storage_error(exc, "append to", path) from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise refused(path, "not a regular file", errno.EEXIST)
        write_all(fd, text.encode("utf-8"))
    except OSError as exc:
        raise storage_error(exc, "append to", path) from exc
    finally:
        os.close(fd)


def publish(src: Path, target: Path) -> None:
    """Move our finished file ``src`` onto ``target`` (same file system), atomically."""
    check_target(target)
    make_dirs(target.parent)
    try:
        os.replace(src, target)
    except OSError as exc:
        raise storage_error(exc, "write", target) from exc
    _fsync_dir(target.parent)


def remove_leftover_temps(directory: Path) -> int:
    """Remove the temp files a killed writer left in ``directory``; how many were removed.

    Call it only on a folder no live writer uses (one held by the output lock): a live
    writer's temp file looks the same.
    """
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    for entry in entries:
        if not _TEMP_NAME.fullmatch(entry.name):
            continue
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False) or entry.is_symlink():
                os.unlink(entry.path)
                removed += 1
    return removed
