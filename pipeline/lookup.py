"""Which chunks of a plan the cache holds, and which distinct requests the rest need.

Chunks whose requests are identical (same body, same host: the same cache key) are one
request: the first chunk that needs it sends it, and its answer serves every other. So a
run sends, and ``plan`` counts and bills, each distinct missing key once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.cache import ChunkCache
from pipeline.planning import Plan


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


def wants(found: CacheLookup) -> list[Want]:
    """The distinct keys ``found`` misses, in plan order, each with the chunks it serves."""
    users: dict[str, list[tuple[int, int]]] = {}
    for ci, (keys, paths) in enumerate(zip(found.keys, found.paths, strict=True)):
        for k, (key, path) in enumerate(zip(keys, paths, strict=True)):
            if path is None:
                users.setdefault(key, []).append((ci, k))
    return [Want(key, tuple(u)) for key, u in users.items()]


__all__ = ["CacheLookup", "Want", "lookup_cache", "wants"]
