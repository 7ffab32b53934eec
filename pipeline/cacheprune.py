"""Bounds for the cache's quarantine folder: what the cache moved aside is kept for a look,
not for ever.

``cachefs.move_aside`` names each thing it moves ``<name>-<YYYYmmddTHHMMSS>-<hex>`` (local
time): that stamp, not the thing's own modification time (a damaged entry can be months old
when it is found), says when it was quarantined. At the first use of a cache, things
quarantined longer ago than ``max_age_s`` are removed, then the oldest others until the
folder holds at most ``max_bytes``. Nothing here follows a symbolic link: a link in the
quarantine is removed as a link.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path

_STAMP = re.compile(r"-(\d{8}T\d{6})-[0-9a-f]{8}$")


@dataclass(frozen=True)
class QuarantineBounds:
    max_age_s: float = 7 * 24 * 3600.0  # a week: time to look at what went wrong
    max_bytes: int = 256 * 1024 * 1024


def _quarantined_at(path: Path, info: os.stat_result) -> float:
    match = _STAMP.search(path.name)
    if match is not None:
        with contextlib.suppress(ValueError, OverflowError):
            return time.mktime(time.strptime(match.group(1), "%Y%m%dT%H%M%S"))
    return info.st_ctime  # not a name of ours: the rename into the folder set its ctime


def _size(path: Path, info: os.stat_result) -> int:
    if not stat.S_ISDIR(info.st_mode):
        return info.st_size
    total = 0
    for folder, _, names in os.walk(path):  # os.walk does not follow links by default
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def _remove(path: Path, info: os.stat_result) -> None:
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)


def prune_quarantine(
    folder: Path, bounds: QuarantineBounds = QuarantineBounds(), now: float | None = None
) -> int:
    """Remove from ``folder`` what is older than the bounds allow, oldest first; how many
    things were removed. A missing folder is nothing to do; never raises."""
    now = time.time() if now is None else now
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return 0
        found = []
        for entry in os.scandir(folder):
            path = Path(entry.path)
            info = os.lstat(path)
            found.append((_quarantined_at(path, info), path, info))
    except OSError:
        return 0
    found.sort(key=lambda item: item[0])
    removed = 0
    kept = []
    for at, path, info in found:
        if now - at > bounds.max_age_s:
            _remove(path, info)
            removed += 1
        else:
            kept.append((path, info, _size(path, info)))
    total = sum(size for _, _, size in kept)
    for path, info, size in kept:  # oldest first
        if total <= bounds.max_bytes:
            break
        _remove(path, info)
        total -= size
        removed += 1
    return removed
