"""Content-addressed store of synthesized chunks; it repairs itself and never pays twice.

Layout of one entry (``key`` is 64 hex digits)::

    <dir>/<key[:2]>/<key>/chunk.<ext>        the audio, usable as is as a part file
    <dir>/<key[:2]>/<key>/chunk.sha256       "<sha256>  chunk.<ext>" (sha256sum -c format)
    <dir>/<key[:2]>/<key>/chunk.key          "<key>": an entry moved to another key's place
                                             is told apart (older entries have none)

An entry is built in this process's staging folder (``<dir>/.staging/<pid>-<hex>/``), then
renamed to ``<key>``: that rename is the commit point, and it survives a killed process.
Renaming a folder onto a non-empty one fails, so the first writer of a key wins and entries
never change afterwards. Syncs against power loss are batched (``SyncBatcher``): a power cut
can lose the entries committed in the last second (at most 256 of them), which then fail
their checksum and are bought again; ``flush()`` and ``close()`` sync at once.

The cache repairs itself: anything at an entry's path that is not a valid entry for its key
(a file, a symbolic link, dangling or not, a wrong checksum, another key's entry) is moved
into ``<dir>/.quarantine/`` and counts as absent. What dead processes left (staging folders,
older versions' claim files and ``.tmp-*`` folders) is removed at the first use of a cache.

Two processes sharing the cache never buy one key twice if they take its claim
(``claim(key)``, a record lock on one byte of ``<dir>/.claims.lock``: see ``claims.py``)
before sending and hold it until the answer is committed, and look the key up again once
they hold it.

The key is sha256 over the canonical JSON of the full request body and the API host (scheme,
host and port only: never a token, user info, path or query), plus a schema version, so an
answer from another host, voice, format or text never matches.

The methods block on file I/O: async callers run them in a worker thread (a claim's
``async with`` polls instead). They are thread-safe, and safe between processes.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import math
import os
import re
import shutil
import stat
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from pipeline.cachefs import (
    AUDIO_STEM,
    CHECKSUM_NAME,
    KEY_NAME,
    STAGING,
    CorruptEntry,
    Staging,
    SyncBatcher,
    clean_leftovers,
    ensure_folder,
    move_aside,
    read_entry,
    write_entry,
)
from pipeline.claims import ClaimTable, KeyClaim, claim_table, release_table
from pipeline.errors import ConfigError, StorageError
from pipeline.fileio import explain, storage_error
from pipeline.locks import LOCK_NAME, OutputLock
from pipeline.settings import host_id

log = logging.getLogger(__name__)

# Bump when the key's inputs or the entry layout change: old entries then simply never match.
CACHE_SCHEMA = "tts-pipeline-chunk/1"

_KEY = re.compile(r"[0-9a-f]{64}")
_EXT = re.compile(r"[a-z0-9]{1,10}")
# What a rename onto an entry's path meets when something is there, or its shard is gone.
_IN_THE_WAY = (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR, errno.ENOENT)
DEFAULT_SYNC_INTERVAL_S = 1.0
DEFAULT_SYNC_EVERY = 256


@dataclass(frozen=True)
class CacheStats:
    """What the cache has done in this process."""

    hits: int = 0
    misses: int = 0
    corrupt: int = 0  # things at entry paths moved aside, and counted as misses too
    writes: int = 0  # entries this process committed (a put that lost a race is not one)


class ChunkCache:
    """Synthesized chunks on disk, addressed by what was asked of which host.

    Use it as a context manager, or call ``close()`` at the end of a run: that syncs the
    last entries and removes this process's staging folder. Without it, both happen when
    the object is collected or the process exits normally.
    """

    def __init__(
        self,
        directory: Path,
        *,
        sync_interval_s: float = DEFAULT_SYNC_INTERVAL_S,
        sync_every: int = DEFAULT_SYNC_EVERY,
    ) -> None:
        self._dir = Path(directory)
        self._lock = threading.Lock()
        self._staging_lock = threading.Lock()
        self._hits = 0
        self._misses = 0
        self._corrupt = 0
        self._writes = 0
        self._cleaned = False
        self._ready: set[Path] = set()  # folders known to be real folders (see _ensure)
        self._staging: Staging | None = None
        self._stagings: list[Staging] = []  # shared with the finalizer, which must not hold self
        self._claims: list[ClaimTable] = []  # the same
        self._syncer = SyncBatcher(self._dir, sync_interval_s, sync_every)
        self._finalizer = weakref.finalize(self, _close, self._syncer, self._stagings, self._claims)

    @property
    def directory(self) -> Path:
        return self._dir

    @property
    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self._hits, self._misses, self._corrupt, self._writes)

    @property
    def syncs(self) -> int:
        """How many batched syncs this cache has made."""
        return self._syncer.syncs

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
        """The entry's audio file if a valid entry is there; anything else at its path is
        moved aside and counts as absent. ConfigError when that cannot be done (a read-only
        cache): every answer bought would be lost too, so nothing should be sent."""
        try:
            return self.find(key)
        except StorageError as exc:
            raise ConfigError(
                f"{exc}; make the cache folder {self._dir} usable or use another --cache-dir"
            ) from exc

    def find(self, key: str) -> Path | None:
        """``get`` for a run under way (after taking the key's claim): the same repair, but
        StorageError (an OSError) when it cannot be done, like ``put``."""
        self._clean_once()
        try:
            audio = self._lookup(key)
        except OSError as exc:
            raise storage_error(exc, "read the cache in", self._dir) from exc
        self._count(hits=int(audio is not None), misses=int(audio is None))
        return audio

    def put(self, key: str, audio: bytes, ext: str) -> Path:
        """Store ``audio`` under ``key`` unless a valid entry is there; return its audio file.

        ``ext`` is the file extension without the dot (``mp3``, ``wav``, ``pcm``, ``opus``).
        StorageError (an OSError) when the cache cannot store it: disk full, read-only...
        """
        entry = self.path_for(key)
        if not _EXT.fullmatch(ext):
            raise ConfigError(f"not a file extension: {ext!r}")
        self._clean_once()
        try:
            return self._put(key, entry, audio, ext)
        except OSError as exc:
            raise storage_error(exc, "store a chunk in the cache", self._dir) from exc

    def claim(self, key: str, timeout_s: float | None = None) -> KeyClaim:
        """The claim on ``key`` (not yet taken): see ``KeyClaim`` and the module doc."""
        _check_key(key)
        self._clean_once()
        with self._staging_lock:
            if not self._claims:
                try:
                    self._ensure(self._dir)
                    self._claims.append(claim_table(self._dir, self._move_aside))
                except OSError as exc:
                    raise storage_error(exc, "claim a cache key in", self._dir) from exc
            table = self._claims[0]
        return KeyClaim(table, key, timeout_s, owner=self)

    def flush(self) -> None:
        """Make every entry committed so far durable against power loss, now."""
        self._syncer.flush()

    def close(self) -> None:
        """``flush()``, then remove this process's staging folder."""
        try:
            self.flush()
        finally:
            self._finalizer()

    def __enter__(self) -> ChunkCache:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _lookup(self, key: str) -> Path | None:
        entry = self.path_for(key)
        try:
            info = os.lstat(entry.parent)
        except (FileNotFoundError, NotADirectoryError):
            return None  # no cache yet, or a file where it should be (put will say so)
        if not stat.S_ISDIR(info.st_mode):
            self._move_aside(entry.parent, "a file or link where a cache folder belongs")
            return None
        try:
            return read_entry(entry, key)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except CorruptEntry as exc:
            return self._set_aside(entry, key, str(exc))

    def _set_aside(self, entry: Path, key: str, reason: str) -> Path | None:
        """Move the damage at ``entry`` aside; the valid entry found there meanwhile, if any."""
        moved = self._move_aside(entry, reason)
        if moved is None:
            return None
        try:
            name = read_entry(moved, key).name
            # Between our check and the move, another process put a valid entry there.
            os.rename(moved, entry)
        except (OSError, CorruptEntry):
            return None
        self._count(corrupt=-1)
        return entry / name

    def _move_aside(self, path: Path, reason: str) -> Path | None:
        try:
            moved = move_aside(self._dir, path, reason)
        except FileNotFoundError:
            return None  # someone else moved it first
        except OSError as exc:
            raise StorageError(
                exc.errno or errno.EIO,
                f"cache entry {path} is {reason} and cannot be moved aside: {explain(exc)}",
            ) from exc
        self._count(corrupt=1)
        return moved

    def _put(self, key: str, entry: Path, audio: bytes, ext: str) -> Path:
        self._ensure(entry.parent)
        temp = self._staging_folder().new_folder(key)
        committed = False
        try:
            write_entry(temp, key, audio, ext)
            for _ in range(3):
                try:
                    os.rename(temp, entry)
                except OSError as exc:
                    if exc.errno not in _IN_THE_WAY:
                        raise
                    existing = self._lookup(key)  # moves anything invalid aside
                    if existing is not None:
                        return existing
                    self._ensure(entry.parent, fresh=True)
                    continue
                committed = True
                break
        finally:
            if not committed:
                shutil.rmtree(temp, ignore_errors=True)
        if not committed:
            raise StorageError(
                errno.EEXIST, f"cannot store {entry}: something keeps appearing there"
            )
        self._count(writes=1)
        self._syncer.committed(entry)
        return entry / f"{AUDIO_STEM}.{ext}"

    def _ensure(self, folder: Path, *, fresh: bool = False) -> None:
        """``folder`` as a real folder; the cache's own root may be a link the user made.

        Checked once per folder and process (a rename into it says if it has gone since),
        or again when ``fresh``."""
        if folder in self._ready and not fresh:
            return
        if folder == self._dir:
            folder.mkdir(parents=True, exist_ok=True)
        else:
            self._ensure(folder.parent)
            ensure_folder(folder, self._move_aside)
        self._ready.add(folder)

    def _staging_folder(self) -> Staging:
        with self._staging_lock:  # not self._lock: making the folder may count a repair
            if self._staging is None:
                self._ensure(self._dir / STAGING)
                self._staging = Staging(self._dir)
                self._stagings.append(self._staging)
            return self._staging

    def _clean_once(self) -> None:
        with self._lock:
            if self._cleaned:
                return
            self._cleaned = True
        if self._dir.is_dir():
            removed = clean_leftovers(self._dir)
            if removed:
                log.info("cache: removed %d leftover(s) of dead runs in %s", removed, self._dir)

    def _count(self, *, hits: int = 0, misses: int = 0, corrupt: int = 0, writes: int = 0) -> None:
        with self._lock:
            self._hits += hits
            self._misses += misses
            self._corrupt += corrupt
            self._writes += writes


def _close(syncer: SyncBatcher, stagings: list[Staging], claims: list[ClaimTable]) -> None:
    with contextlib.suppress(OSError):
        syncer.flush()
    while stagings:
        stagings.pop().close()
    while claims:
        release_table(claims.pop())


def canonical_host(base_url: str) -> str:
    """The host of a cache key: ``settings.host_id`` of an http(s) base URL; a backend's own
    id (a local server's ``local://ENGINE``, a test backend's) as it is."""
    scheme, sep, rest = base_url.partition("://")
    if sep and rest and scheme.strip().lower() not in ("http", "https"):
        return base_url
    return host_id(base_url)


def _canonical_value(value: Any) -> Any:
    """JSON-ready value where numbers equal by value are spelled the same."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"a request body cannot hold {value!r}")
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
        raise ConfigError(f"not a cache key: {key!r}")


__all__ = [
    "AUDIO_STEM",
    "CACHE_SCHEMA",
    "CHECKSUM_NAME",
    "KEY_NAME",
    "LOCK_NAME",
    "CacheStats",
    "ChunkCache",
    "KeyClaim",
    "OutputLock",
    "canonical_host",
]
