"""The budget decision before a run: would the characters to bill cross the budget?

The runner enforces the same budget request by request (``BudgetExhausted``); this is the
up-front check, so that a run that cannot fit sends nothing at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class Lookup(Protocol):
    """What the cache lookup found (``runner.CacheLookup``)."""

    @property
    def hits(self) -> int: ...
    @property
    def billable_characters(self) -> int: ...


@dataclass(frozen=True)
class BudgetCheck:
    """The characters a run would bill against its budget (None = no budget)."""

    billable_characters: int
    chunks_to_send: int
    budget: int | None

    @property
    def over(self) -> bool:
        return self.budget is not None and self.billable_characters > self.budget


def check_budget(chunk_count: int, found: Lookup, budget: int | None) -> BudgetCheck:
    """How a plan of ``chunk_count`` chunks, after the cache hits in ``found``, fits ``budget``."""
    return BudgetCheck(found.billable_characters, chunk_count - found.hits, budget)
