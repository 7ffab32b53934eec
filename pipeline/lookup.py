"""The runner's side of the cache: which chunks it holds, which distinct requests the rest
need, and buying a key once across processes.

Chunks whose requests are identical (same body, same host: the same cache key) are one
request: the first chunk that needs it sends it, and its answer serves every other. So a
run sends, and ``plan`` counts and bills, each distinct missing key once. Across processes,
a key is bought under its claim (``bought_once``), held until the answer is committed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import anyio

from pipeline.cache import ChunkCache
from pipeline.errors import StorageError
from pipeline.formats import FILE_EXTENSIONS
from pipeline.planning import Plan
from pipeline.speech import SpeechParams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheLookup:
    """Which chunks of a plan the cache already holds, and what the rest would cost."""

    keys: tuple[tuple[str, ...], ...]  # per chapter, per chunk
    paths: tuple[tuple[Path | None, ...], ...]
    billable_characters: int  # characters of the distinct requests not in the cache
    requests: int = -1  # distinct requests not in the cache; -1: count them from ``keys``

    def __post_init__(self) -> None:
        if self.requests < 0:
            missing = {
                k
                for keys, paths in zip(self.keys, self.paths, strict=True)
                for k, p in zip(keys, paths, strict=True)
                if p is None
            }
            object.__setattr__(self, "requests", len(missing))

    @property
    def hits(self) -> int:
        return sum(p is not None for chapter in self.paths for p in chapter)

    @property
    def repeats(self) -> int:
        """Chunks not in the cache whose request another chunk of the plan sends."""
        chunks = sum(p is None for chapter in self.paths for p in chapter)
        return chunks - self.requests


@dataclass(frozen=True)
class Want:
    """One distinct request to make, and every chunk (chapter, chunk index) it serves."""

    key: str
    users: tuple[tuple[int, int], ...]


def lookup_cache(plan: Plan, cache: ChunkCache, host_id: str) -> CacheLookup:
    """Look every chunk of ``plan`` up in ``cache``: blocking file I/O, run it in a thread."""
    keys: list[tuple[str, ...]] = []
    paths: list[tuple[Path | None, ...]] = []
    found: dict[str, Path | None] = {}  # a key repeated in the plan is looked up once
    billable = 0
    for chapter in plan.chapters:
        chapter_keys = tuple(cache.key(c.request().body(), host_id) for c in chapter.chunks)
        chapter_paths = []
        for chunk, key in zip(chapter.chunks, chapter_keys, strict=True):
            if key not in found:
                found[key] = cache.get(key)
                if found[key] is None:
                    billable += chunk.characters
            chapter_paths.append(found[key])
        keys.append(chapter_keys)
        paths.append(tuple(chapter_paths))
    requests = sum(p is None for p in found.values())
    return CacheLookup(tuple(keys), tuple(paths), billable, requests)


async def find_again(cache: ChunkCache, key: str) -> Path | None:
    """``cache.find(key)`` for a run under way, once it holds the key's claim.

    Most keys are still absent: one ``lstat`` on the event loop says so, and spares a trip
    to a worker thread per chunk. Anything at the entry's path is looked at (and repaired)
    in a thread. StorageError as ``find``."""
    if not os.path.lexists(cache.path_for(key)):  # noqa: ASYNC240 (one lstat, by design)
        return None
    return await anyio.to_thread.run_sync(cache.find, key)


async def bought_once(
    cache: ChunkCache, key: str, timeout_s: float, buy: Callable[[], Awaitable[Path]]
) -> tuple[Path, bool]:
    """The answer for ``key``: ``buy()``'s, or (True) one another run committed meanwhile.

    The claim is held from the look-up until ``buy`` has committed the answer, so runs
    sharing the cache never buy one key twice. StorageError when the cache cannot claim."""
    async with cache.claim(key, timeout_s):
        found = await find_again(cache, key)
        if found is not None:
            return found, True
        return await buy(), False


def claim_timeout_s(attempt_timeout_s: float, retries: int, max_backoff_s: float) -> float:
    """Longer than any holder can take to buy a key (every attempt and backoff, plus the
    store): past it, the holder is stuck, and a second payment beats a hang."""
    return (attempt_timeout_s + max_backoff_s) * (retries + 1) + 60


async def store_answer(
    cache: ChunkCache,
    key: str,
    audio: bytes,
    params: SpeechParams,
    verify: Callable[[], None] | None = None,
) -> Path:
    """Check ``audio`` is what ``params`` asked for (BadAudio if not; ``verify`` instead of
    ``check_audio`` when given, e.g. the quality gate) and commit it under ``key``
    (StorageError if the cache cannot), in a worker thread."""

    def verify_and_store() -> Path:
        if verify is not None:
            verify()
        else:
            from pipeline.audio import check_audio  # PyAV: loaded in this thread, not the loop

            check_audio(audio, params.format, params.rate)
        return cache.put(key, audio, FILE_EXTENSIONS[params.format])

    return await anyio.to_thread.run_sync(verify_and_store)


async def close_quietly(cache: ChunkCache) -> None:
    """``cache.close()`` at the end of a run, even a cancelled one. Its entries are committed
    already: a failed final sync only risks the last second's against a power cut, so it is
    logged, and does not change the run's outcome."""
    with anyio.CancelScope(shield=True):
        try:
            await anyio.to_thread.run_sync(cache.close)
        except StorageError as e:
            log.warning("cache: the final sync failed (%s)", e)


def wants(found: CacheLookup) -> list[Want]:
    """The distinct keys ``found`` misses, in plan order, each with the chunks it serves."""
    users: dict[str, list[tuple[int, int]]] = {}
    for ci, (keys, paths) in enumerate(zip(found.keys, found.paths, strict=True)):
        for k, (key, path) in enumerate(zip(keys, paths, strict=True)):
            if path is None:
                users.setdefault(key, []).append((ci, k))
    return [Want(key, tuple(u)) for key, u in users.items()]


__all__ = [
    "CacheLookup",
    "Want",
    "bought_once",
    "claim_timeout_s",
    "close_quietly",
    "find_again",
    "lookup_cache",
    "store_answer",
    "wants",
]
