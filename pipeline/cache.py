"""Content-addressed store of synthesized chunks, and the lock that keeps two runs apart.

Layout of one entry (``key`` is 64 hex digits)::

    <dir>/<key[:2]>/<key>/chunk.<ext>        the audio, usable as is as a part file
    <dir>/<key[:2]>/<key>/chunk.sha256       "<sha256>  chunk.<ext>" (sha256sum -c format)

An entry is built in a temporary directory next to it (``.tmp-*``), every file fsynced, then the
directory is renamed to ``<key>``: that rename is the commit point. Renaming a directory onto a
non-empty one fails, so the first writer of a key wins and entries never change afterwards; two
writers can never leave one's audio next to the other's checksum. A crash leaves only a
``.tmp-*`` directory, which lookups never see.

The key is sha256 over the canonical JSON of the full request body and the API host (scheme,
host and port only: never a token, user info, path or query), plus a schema version, so an
answer from another host, voice, format or text never matches.

The methods block on file I/O: async callers run them in a worker thread. They are
thread-safe, and safe between processes sharing one cache directory.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from pipeline.errors import ConfigError

log = logging.getLogger(__name__)

# Bump when the key's inputs or the entry layout change: old entries then simply never match.
CACHE_SCHEMA = "tts-pipeline-chunk/1"
AUDIO_STEM = "chunk"
CHECKSUM_NAME = "chunk.sha256"
LOCK_NAME = ".tts-pipeline.lock"

_KEY = re.compile(r"[0-9a-f]{64}")
_EXT = re.compile(r"[a-z0-9]{1,10}")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class CacheStats:
    """What the cache has done in this process."""

    hits: int = 0
    misses: int = 0
    corrupt: int = 0  # entries found damaged, removed, and counted as misses too
    writes: int = 0  # entries this process committed (a put that lost a race is not one)


class CorruptEntry(Exception):
    """An entry that fails verification; internal to this module."""


class ChunkCache:
    """Synthesized chunks on disk, addressed by what was asked of which host."""

    def __init__(self, directory: Path) -> None:
        self._dir = Path(directory)
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0
        self._corrupt = 0
        self._writes = 0

    @property
    def directory(self) -> Path:
        return self._dir

    @property
    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self._hits, self._misses, self._corrupt, self._writes)

    @staticmethod
    def key(body: Mapping[str, Any], host: str) -> str:
        """The entry name for a request body sent to ``host`` (a base URL such as
        ``https://api.coze.cn``). Numbers are compared by value: ``1`` and ``1.0`` give
        the same key; ``True`` is not ``1``."""
        canonical = {
            "schema": CACHE_SCHEMA,
            "host": canonical_host(host),
            "body": _canonical_value(body),
        }
        text = json.dumps(
            canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def path_for(self, key: str) -> Path:
        """The entry's directory (whether or not it exists)."""
        _check_key(key)
        return self._dir / key[:2] / key

    def get(self, key: str) -> Path | None:
        """The entry's audio file if present and intact; a damaged entry is removed."""
        audio = self._lookup(key)
        self._count(hits=int(audio is not None), misses=int(audio is None))
        return audio

    def put(self, key: str, audio: bytes, ext: str) -> Path:
        """Store ``audio`` under ``key`` unless an intact entry is there; return its audio file.

        ``ext`` is the file extension without the dot (``mp3``, ``wav``, ``pcm``, ``opus``).
        """
        entry = self.path_for(key)
        if not _EXT.fullmatch(ext):
            raise ValueError(f"not a file extension: {ext!r}")
        entry.parent.mkdir(parents=True, exist_ok=True)
        # Two attempts: the second follows the removal of a damaged entry in the way.
        for _ in range(2):
            if _commit(entry, _build(entry, audio, ext)):
                self._count(writes=1)
                return entry / f"{AUDIO_STEM}.{ext}"
            existing = self._lookup(key)
            if existing is not None:
                return existing
        raise OSError(f"could not store cache entry {key} in {self._dir}")

    def _lookup(self, key: str) -> Path | None:
        entry = self.path_for(key)
        try:
            return _verified_audio(entry)
        except FileNotFoundError:
            return None
        except CorruptEntry as exc:
            log.warning("cache entry %s is damaged (%s): removed, will synthesize again", key, exc)
            _discard(entry)
            self._count(corrupt=1)
            return None

    def _count(self, *, hits: int = 0, misses: int = 0, corrupt: int = 0, writes: int = 0) -> None:
        with self._lock:
            self._hits += hits
            self._misses += misses
            self._corrupt += corrupt
            self._writes += writes


def canonical_host(base_url: str) -> str:
    """``scheme://host[:port]`` in lower case; user info, path, query and fragment dropped."""
    parts = urlsplit(base_url.strip())
    if not parts.scheme or not parts.hostname:
        raise ValueError("the cache key needs the API base URL, such as https://api.coze.cn")
    scheme = parts.scheme.lower()
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _canonical_value(value: Any) -> Any:
    """JSON-ready value where numbers equal by value are spelled the same."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"a request body cannot hold {value!r}")
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        return {_mapping_key(k): _canonical_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical_value(v) for v in value]
    raise TypeError(f"a request body cannot hold {type(value).__name__}")


def _mapping_key(key: object) -> str:
    if not isinstance(key, str):
        raise TypeError(f"request body keys must be strings, not {type(key).__name__}")
    return key


def _check_key(key: str) -> None:
    # Keys become path names: only ever what key() makes.
    if not _KEY.fullmatch(key):
        raise ValueError(f"not a cache key: {key!r}")


def _verified_audio(entry: Path) -> Path:
    """The entry's audio file; FileNotFoundError if there is no entry, CorruptEntry if bad."""
    if not entry.is_dir():
        raise FileNotFoundError(entry)
    try:
        recorded = (entry / CHECKSUM_NAME).read_text(encoding="ascii")
    except FileNotFoundError:
        raise CorruptEntry("checksum file missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CorruptEntry(f"checksum file unreadable: {exc}") from None
    digest, name = _parse_checksum(recorded)
    audio = entry / name
    try:
        data = audio.read_bytes()
    except FileNotFoundError:
        raise CorruptEntry(f"{name} missing") from None
    except OSError as exc:
        raise CorruptEntry(f"{name} unreadable: {exc}") from None
    if hashlib.sha256(data).hexdigest() != digest:
        raise CorruptEntry(f"{name} does not match its checksum ({len(data)} bytes)")
    return audio


def _parse_checksum(text: str) -> tuple[str, str]:
    match = re.fullmatch(r"([0-9a-f]{64})  (chunk\.[a-z0-9]{1,10})\n", text)
    if match is None:
        raise CorruptEntry("checksum file malformed")
    return match.group(1), match.group(2)


def _build(entry: Path, audio: bytes, ext: str) -> Path:
    """A complete, fsynced entry in a temporary directory next to ``entry``."""
    temp = Path(tempfile.mkdtemp(prefix=f".tmp-{entry.name[:16]}-", dir=entry.parent))
    try:
        name = f"{AUDIO_STEM}.{ext}"
        _write_synced(temp / name, audio)
        line = f"{hashlib.sha256(audio).hexdigest()}  {name}\n"
        _write_synced(temp / CHECKSUM_NAME, line.encode("ascii"))
        _fsync_dir(temp)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return temp


def _commit(entry: Path, temp: Path) -> bool:
    """Rename ``temp`` to ``entry``; False (and ``temp`` removed) if ``entry`` already exists."""
    try:
        os.rename(temp, entry)
    except OSError as exc:
        shutil.rmtree(temp, ignore_errors=True)
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
            return False
        raise
    _fsync_dir(entry.parent)
    return True


def _discard(entry: Path) -> None:
    """Remove a damaged entry; renamed away first so that a new put can commit at once."""
    trash = entry.parent / f".trash-{entry.name[:16]}-{os.getpid()}-{threading.get_ident()}"
    shutil.rmtree(trash, ignore_errors=True)  # left by a crash of this very pid and thread
    try:
        os.rename(entry, trash)
    except FileNotFoundError:
        return  # someone else removed it first
    if _is_intact(trash):
        # Between our check and the rename, another reader removed the damaged entry and a
        # writer committed a good one: that one stays.
        _commit(entry, trash)
        return
    shutil.rmtree(trash, ignore_errors=True)


def _is_intact(entry: Path) -> bool:
    try:
        _verified_audio(entry)
    except (FileNotFoundError, CorruptEntry):
        return False
    return True


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class OutputLock:
    """Exclusive use of an output directory by one run, with ``flock`` on a lock file.

    The kernel drops the lock when its holder exits, however it exits: a lock file left by a
    killed run never blocks the next one. The file is never deleted (deleting a flock'd file
    lets two runs lock two different files of the same name); it holds the holder's pid and
    start time for the message a second run gets.
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
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            # Not writable, under a file, on a full disk: nothing can be kept, so say so
            # before anything is sent.
            raise ConfigError(
                f"cannot use the output directory {self._dir}: {exc.strerror or exc}"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise ConfigError(_busy_message(self._dir, holder)) from None
        except BaseException:
            os.close(fd)
            raise
        _write_owner(fd)
        self._fd = fd
        return self

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
            os.ftruncate(fd, 0)  # a finished run leaves no pid behind to mislead anyone
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
