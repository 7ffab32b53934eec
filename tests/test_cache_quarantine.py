"""The cache's quarantine is pruned when a cache is first used: by age, then by size."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pipeline.cache import ChunkCache
from pipeline.cachefs import QUARANTINE, move_aside
from pipeline.cacheprune import QuarantineBounds, prune_quarantine

DAY = 24 * 3600.0


def _aside(root: Path, name: str, size: int, *, folder: bool = False) -> Path:
    thing = root / name
    if folder:
        thing.mkdir()
        (thing / "chunk.mp3").write_bytes(b"x" * size)
    else:
        thing.write_bytes(b"x" * size)
    return move_aside(root, thing, "damaged (a test)")


def _stamped(path: Path, seconds_ago: float) -> Path:
    """``path`` renamed as if quarantined ``seconds_ago`` (the stamp in its name counts)."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(time.time() - seconds_ago))
    base, _, tail = path.name.rpartition("-")
    head = base.rpartition("-")[0]
    target = path.with_name(f"{head}-{stamp}-{tail}")
    path.rename(target)
    return target


def test_things_quarantined_longer_than_a_week_go_when_the_cache_is_next_used(
    tmp_path: Path,
) -> None:
    root = tmp_path / "cache"
    root.mkdir()
    old = _stamped(_aside(root, "a" * 64, 10, folder=True), 8 * DAY)
    recent = _stamped(_aside(root, "b" * 64, 10), 2 * DAY)
    fresh = _aside(root, "c" * 64, 10)
    os.utime(fresh, (0, 0))  # its own time is ancient: the stamp in the name counts
    with ChunkCache(root) as cache:
        assert cache.get("d" * 64) is None  # the first use cleans up
    assert sorted(p.name for p in (root / QUARANTINE).iterdir()) == sorted(
        [recent.name, fresh.name]
    )
    assert not old.exists()


def test_beyond_the_size_bound_the_oldest_go_first_and_links_are_not_followed(
    tmp_path: Path,
) -> None:
    root = tmp_path / "cache"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.write_bytes(b"y" * 5000)
    link = root / "link"
    link.symlink_to(outside)
    oldest = _stamped(move_aside(root, link, "a link (a test)"), 3 * DAY)
    middle = _stamped(_aside(root, "m" * 64, 400, folder=True), 2 * DAY)
    newest = _stamped(_aside(root, "n" * 64, 400), 1 * DAY)
    removed = prune_quarantine(root / QUARANTINE, QuarantineBounds(max_bytes=500))
    assert removed == 2
    assert not oldest.is_symlink() and not middle.exists() and newest.is_file()
    assert outside.read_bytes() == b"y" * 5000  # the link went, never what it pointed to
    assert prune_quarantine(root / QUARANTINE, QuarantineBounds(max_bytes=500)) == 0


def test_no_quarantine_folder_or_a_file_in_its_place_is_nothing_to_prune(
    tmp_path: Path,
) -> None:
    assert prune_quarantine(tmp_path / QUARANTINE) == 0
    (tmp_path / QUARANTINE).write_bytes(b"not a folder")
    assert prune_quarantine(tmp_path / QUARANTINE, QuarantineBounds(max_age_s=0)) == 0
    assert (tmp_path / QUARANTINE).is_file()
