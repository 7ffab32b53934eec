"""The budget decision before a run: would the characters to bill cross the budget?

The runner enforces the same budget request by request (``BudgetExhausted``); this is the
up-front check, so that a run that cannot fit sends nothing at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pipeline.errors import CODE_BUDGET, BudgetExhausted


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


class BudgetMeter:
    """The character budget during a run: requests in flight count as if billed.

    Counting them lets concurrent requests never cross the budget together.
    """

    def __init__(self, budget: int | None) -> None:
        self.budget = budget
        self.reserved = 0  # characters of the requests in flight

    def reserve(self, characters: int, billed: int) -> None:
        """Count a request of ``characters``; ``BudgetExhausted`` if it could cross."""
        if self.budget is None:
            return
        committed = billed + self.reserved
        if committed + characters > self.budget:
            raise BudgetExhausted(
                CODE_BUDGET,
                f"the character budget of {self.budget} would be crossed: {committed} billed or "
                f"in flight, and the next chunk has {characters}",
            )
        self.reserved += characters

    def release(self, characters: int) -> None:
        """The request is over (billed or not): it no longer holds a reservation."""
        if self.budget is not None:
            self.reserved -= characters
