"""Splitting a job's chapters over N machines (a CI job matrix): ``--shard K/N``.

The split is round-robin by position: shard K of N takes the chapters at 0-based positions
K-1, K-1+N, K-1+2N, ... Two properties matter for a job that runs every night:

- Balanced: every shard gets ``len // N`` or ``len // N + 1`` chapters, for any N and any
  number of chapters. Hashing chapter ids would keep a chapter on its shard under any edit,
  but with a handful of chapters and N = 3 it routinely gives one machine twice the work of
  another (and sometimes none), and the slowest shard sets the wall-clock time of the job.
- Stable when chapters are appended: a chapter's position never changes when new chapters
  are added at the end, so it stays on its shard, and that shard's restored chunk cache
  already holds its audio. Inserting or removing a chapter in the middle moves the chapters
  after it; they are then synthesized again on their new shard unless the caches are shared,
  which is the price of the balance above.

Being positional also lets ``merge-reports`` put the chapters of the shard reports back in
the job's order (see ``original_position``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ConfigError

SHARD_PATTERN = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")
SHARD_HELP = (
    "run only shard K of N of the chapters (1 <= K <= N): a deterministic round-robin split "
    "for a CI job matrix, stable when chapters are added at the end; each shard writes its "
    "own report (join them with `tts-pipeline merge-reports`). The shards run at the same "
    "time against one account, so give each --qps the account's limit divided by N"
)


@dataclass(frozen=True)
class Shard:
    """Shard ``k`` of ``n``, 1-based, as written on the command line."""

    k: int
    n: int

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ConfigError(f"shard count must be 1 or more, not {self.n}")
        if not 1 <= self.k <= self.n:
            raise ConfigError(f"shard number must be 1 to {self.n}, not {self.k}")

    def __str__(self) -> str:
        return f"{self.k}/{self.n}"

    def to_json(self) -> dict[str, int]:
        """The report's ``"shard"`` field."""
        return {"k": self.k, "n": self.n}

    @classmethod
    def from_json(cls, data: Any) -> Shard:
        """Read a report's ``"shard"`` field; ConfigError if it is not ``{"k": K, "n": N}``."""
        if not isinstance(data, dict):
            raise ConfigError(f"shard must be an object with k and n, not {data!r}")
        k, n = data.get("k"), data.get("n")
        # bool is an int to isinstance; {"k": true} is still not a shard number.
        if not (type(k) is int and type(n) is int):
            raise ConfigError(f"shard k and n must be integers, not {data!r}")
        return cls(k, n)


def parse_shard(text: str) -> Shard:
    """``"K/N"`` -> ``Shard(K, N)``; ConfigError with a message fit for the command line."""
    match = SHARD_PATTERN.fullmatch(text)
    if match is None:
        raise ConfigError(f"shard must look like K/N, e.g. 2/3, not {text!r}")
    k, n = int(match.group(1)), int(match.group(2))
    if n < 1:
        raise ConfigError(f"shard {text!r}: N must be 1 or more")
    if not 1 <= k <= n:
        raise ConfigError(f"shard {text!r}: K must be 1 to {n} (shards are numbered from 1)")
    return Shard(k, n)


def select_shard(chapter_ids: Sequence[str], shard: Shard) -> list[int]:
    """The 0-based indices of the chapters that ``shard`` runs, in job order.

    A shard may get no chapter (more shards than chapters): it then runs nothing and writes
    an empty report, so a fixed-size job matrix works for a short job. Duplicate ids are a
    ConfigError: the shard reports could not be merged back.
    """
    duplicates = sorted(i for i, count in Counter(chapter_ids).items() if count > 1)
    if duplicates:
        raise ConfigError(f"duplicate chapter ids: {', '.join(duplicates)}")
    return list(range(shard.k - 1, len(chapter_ids), shard.n))


def original_position(shard: Shard, index_in_shard: int) -> int:
    """Where the ``index_in_shard``-th chapter of ``shard`` sits in the whole job (0-based)."""
    if index_in_shard < 0:
        raise ConfigError(f"index must be 0 or more, not {index_in_shard}")
    return shard.k - 1 + index_in_shard * shard.n


def per_shard_qps(account_qps: float, shards: int) -> float:
    """The ``--qps`` for each of ``shards`` machines that share one account's rate limit."""
    if not account_qps > 0:
        raise ConfigError(f"qps must be more than 0, not {account_qps}")
    if shards < 1:
        raise ConfigError(f"shard count must be 1 or more, not {shards}")
    return account_qps / shards
