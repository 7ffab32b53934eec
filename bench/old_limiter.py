"""The rate limiter as it was before issue 18 (commit 48dc4d3), frozen for the benchmarks.

Used only by the bench, to measure the new limiter side by side with the old one:
``python -m bench.old_limiter run JOB ...`` is ``python -m pipeline run JOB ...`` with the
runner's limiter swapped for this one (same ``qps`` and ``burst``, the old defaults for the
rest). Not part of the product; do not import it from ``pipeline``.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio

from pipeline.errors import ConfigError

# Float rounding must not turn "exactly one token" into an endless run of tiny sleeps.
_EPSILON = 1e-9


@dataclass(frozen=True)
class OldRateLimit:
    """How fast a run may start requests.

    ``qps`` is the ceiling, ``burst`` the bucket's capacity, ``min_qps`` the floor that
    decreases stop at (a ``qps`` below it is its own floor), ``decrease`` the factor applied on
    a rate-limit answer, ``increase_per_s`` the additive recovery per second of successes
    (``None``: ``qps / 10``, so half the ceiling recovers in about 5 s), ``max_pause_s`` the
    longest Retry-After honoured (a bad header must not stall a run for hours); ``settle_s``,
    ``headroom`` and ``hold_s`` steer the search for the server's limit after a refusal
    (module docstring).
    """

    qps: float = 5.0
    burst: int = 1
    min_qps: float = 0.2
    decrease: float = 0.8
    increase_per_s: float | None = None
    max_pause_s: float = 120.0
    settle_s: float = 1.0
    headroom: float = 0.03
    hold_s: float = 30.0

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise ConfigError("invalid rate limit: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        problems = []
        if not _positive(self.qps):
            problems.append(f"qps must be a number above 0 (got {self.qps!r})")
        if isinstance(self.burst, bool) or not isinstance(self.burst, int) or self.burst < 1:
            problems.append(f"burst must be a whole number of at least 1 (got {self.burst!r})")
        if not _positive(self.min_qps):
            problems.append(f"min_qps must be a number above 0 (got {self.min_qps!r})")
        if not (_positive(self.decrease) and self.decrease < 1):
            problems.append(f"decrease must be between 0 and 1 (got {self.decrease!r})")
        if self.increase_per_s is not None and not _positive(self.increase_per_s):
            problems.append(f"increase_per_s must be above 0 (got {self.increase_per_s!r})")
        if not (_positive(self.max_pause_s) or self.max_pause_s == 0):
            problems.append(f"max_pause_s must be 0 or more (got {self.max_pause_s!r})")
        if not (_positive(self.headroom) or self.headroom == 0) or not self.headroom < 1:
            problems.append(f"headroom must be from 0 to below 1 (got {self.headroom!r})")
        for name in ("settle_s", "hold_s"):
            value = getattr(self, name)
            if not (_positive(value) or value == 0):
                problems.append(f"{name} must be 0 or more (got {value!r})")
        return problems

    @property
    def floor(self) -> float:
        """The lowest rate a decrease can reach."""
        return min(self.min_qps, self.qps)

    @property
    def recovery_per_s(self) -> float:
        """Requests per second added back for every second of successes."""
        return self.qps / 10 if self.increase_per_s is None else self.increase_per_s


def _positive(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


DEFAULT_OLD_LIMIT = OldRateLimit()


@dataclass(frozen=True)
class OldLimiterStats:
    """A snapshot of what the limiter has done so far."""

    acquired: int
    decreases: int
    ignored: int  # rate-limit answers that did not decrease the rate (same burst)
    pauses: int  # Retry-After pauses that started or extended the run's pause
    current_qps: float
    refused_qps: float | None = None  # the last rate the server refused, while remembered
    good_qps: float | None = None  # the last rate kept for settle_s without a refusal


class OldAdaptiveRateLimiter:
    """A token bucket in front of every attempt, slowed down by rate-limit answers.

    Use one per run, from the tasks of one event loop (anyio, asyncio backend). ``clock`` and
    ``sleep`` are injectable so tests can run on a fake clock.
    """

    def __init__(
        self,
        limit: OldRateLimit = DEFAULT_OLD_LIMIT,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._limit = limit
        self._clock = clock
        self._sleep = sleep
        # anyio's Lock hands itself to the longest waiter on release: waiters are served FIFO.
        self._lock = anyio.Lock()
        now = clock()
        self._qps = limit.qps
        self._tokens = float(limit.burst)
        self._refilled_at = now  # self._tokens is the bucket's level at this instant
        self._paused_until = now
        self._changed_at = now  # last decrease or increase: recovery counts from here
        self._issued = 0
        self._decreased_at: float | None = None
        self._issued_at_decrease = 0
        self._decreases = 0
        self._ignored = 0
        self._pauses = 0
        self._refused_qps: float | None = None  # too fast: the rate of the last refusal
        self._good_qps: float | None = None  # kept for settle_s without a refusal
        self._settle_until: float | None = None  # after a plain decrease: keep the rate
        self._held_since: float | None = None  # when the rate reached its current target

    @property
    def limit(self) -> OldRateLimit:
        return self._limit

    @property
    def current_qps(self) -> float:
        return self._qps

    @property
    def stats(self) -> OldLimiterStats:
        return OldLimiterStats(
            acquired=self._issued,
            decreases=self._decreases,
            ignored=self._ignored,
            pauses=self._pauses,
            current_qps=self._qps,
            refused_qps=self._refused_qps,
            good_qps=self._good_qps,
        )

    async def acquire(self) -> int:
        """Wait for a token, in arrival order; return this attempt's ticket.

        Pass the ticket to ``on_rate_limited`` so that a burst of refusals counts once.
        Cancelling a waiter consumes no token.
        """
        async with self._lock:
            # Re-check after every sleep: a pause or a decrease may have come in meanwhile.
            while (wait := self._wait_time(self._clock())) > 0:
                await self._sleep(wait)
            self._tokens -= 1.0
            self._issued += 1
            return self._issued

    def on_rate_limited(
        self, retry_after: float | None = None, *, ticket: int | None = None
    ) -> None:
        """The server refused an attempt for its rate: slow down, and pause if it said so."""
        now = self._clock()
        self._refill(now)
        if self._is_new_signal(now, ticket):
            self._decrease(now)
        else:
            self._ignored += 1
        # No saved-up burst into a server that has just refused.
        self._tokens = min(self._tokens, 1.0)
        # Retry-After is whole seconds rounded up, so N means "somewhere in (N-1, N]". The
        # refused request itself waits the full N (the runner's retry does); the rest of the
        # run pauses only for the part that is certain. Pausing everyone for a "1" that
        # stands for a few milliseconds costs a second of the whole run per refusal.
        # NaN compares false: no pause. Infinity (or any huge value) is capped.
        if retry_after is not None and retry_after > 1:
            self._pause(now, min(retry_after - 1.0, self._limit.max_pause_s))

    def on_success(self) -> None:
        """An attempt got through: raise the rate by the time passed since the last change."""
        now = self._clock()
        if now <= self._changed_at:
            return  # still inside a pause, or no time has passed
        self._refill(now)
        self._qps = self._raised(now)
        self._changed_at = now

    def _raised(self, now: float) -> float:
        """The rate after successes from ``_changed_at`` to ``now`` (see the module docstring)."""
        limit = self._limit
        start = self._changed_at
        if self._settle_until is not None:
            if now < self._settle_until:
                return self._qps
            start = max(start, self._settle_until)
            self._settle_until = None
            self._good_qps = self._qps
            self._held_since = start
        refused = self._refused_qps
        if refused is None:
            return min(limit.qps, self._qps + limit.recovery_per_s * (now - start))
        target = self._target(refused)
        if self._qps < target:
            climbed = self._qps + limit.recovery_per_s * (now - start)
            if climbed < target:
                return climbed
            self._held_since = now
            return target
        if self._held_since is None:
            self._held_since = start
        if self._good_qps is None or target > self._good_qps:
            # Still searching: a target kept for settle_s is good, and the next one is higher.
            if now - self._held_since >= limit.settle_s:
                self._good_qps = self._qps
                self._held_since = now
            return self._qps
        probe_from = max(start, self._held_since + limit.hold_s)
        if now <= probe_from:
            return self._qps
        raised = min(limit.qps, self._qps + limit.recovery_per_s * (now - probe_from))
        if raised >= refused:
            # The server takes now what it refused then: start learning afresh.
            self._refused_qps = self._good_qps = None
        return raised

    def _target(self, refused: float) -> float:
        """Where the rate climbs to while a refused rate is remembered."""
        limit = self._limit
        below = refused * (1.0 - limit.headroom)
        good = self._good_qps
        if good is None:
            target = below
        elif refused - good <= limit.headroom * refused:
            target = good  # close enough: stay at the good rate
        else:
            target = min((good + refused) / 2, below)
        return min(limit.qps, max(limit.floor, target))

    def _wait_time(self, now: float) -> float:
        self._refill(now)
        paused = self._paused_until - now
        if paused > _EPSILON:
            return paused
        missing = 1.0 - self._tokens
        return missing / self._qps if missing > _EPSILON else 0.0

    def _refill(self, now: float) -> None:
        if now > self._refilled_at:
            gained = (now - self._refilled_at) * self._qps
            self._tokens = min(float(self._limit.burst), self._tokens + gained)
            self._refilled_at = now

    def _is_new_signal(self, now: float, ticket: int | None) -> bool:
        if self._decreased_at is None:
            return True
        if ticket is not None:
            return ticket > self._issued_at_decrease
        return now - self._decreased_at >= 1.0 / self._qps

    def _decrease(self, now: float) -> None:
        refused = self._qps
        self._refused_qps = refused
        self._held_since = None
        good = self._good_qps
        if good is not None and good < refused:
            # Back to the last rate that held, no lower: the limit lies between the two.
            self._qps = good
            self._settle_until = None
        elif good is not None:
            # The good rate was refused after all (a large server burst hides a small excess
            # for a while): the limit is just under it, not at half of it.
            self._good_qps = None
            self._qps = max(self._limit.floor, refused * (1.0 - self._limit.headroom))
            self._settle_until = now + self._limit.settle_s
        else:
            self._good_qps = None
            self._qps = max(self._limit.floor, refused * self._limit.decrease)
            self._settle_until = now + self._limit.settle_s
        self._decreased_at = now
        self._issued_at_decrease = self._issued
        self._changed_at = max(self._changed_at, now)
        self._decreases += 1

    def _pause(self, now: float, seconds: float) -> None:
        until = now + seconds
        if until <= self._paused_until:
            return
        self._pauses += 1
        self._paused_until = until
        # The bucket fills during the pause as usual, but only up to one token: after the
        # pause the run restarts at its rate, not with a burst.
        start = max(now, self._refilled_at)
        self._tokens = min(1.0, self._tokens + (until - start) * self._qps)
        self._refilled_at = until
        # Time spent paused is not time spent succeeding: recovery starts after the pause,
        # and a rate is not known good before it has been kept for settle_s after it.
        self._changed_at = max(self._changed_at, until)
        if self._settle_until is not None:
            self._settle_until = max(self._settle_until, until + self._limit.settle_s)


def old_limiter_for(limit: Any) -> OldAdaptiveRateLimiter:
    """The old limiter for the runner's (new) ``RateLimit``: its ceiling and burst only."""
    return OldAdaptiveRateLimiter(OldRateLimit(qps=limit.qps, burst=limit.burst))


def main() -> int:
    import pipeline.limits
    from pipeline.cli import main as cli_main

    # Wherever the runner looks the class up (its module, or pipeline.limits at a lazy import).
    pipeline.limits.AdaptiveRateLimiter = old_limiter_for  # type: ignore[misc,assignment]
    for name, module in list(sys.modules.items()):
        if name.startswith("pipeline.") and hasattr(module, "AdaptiveRateLimiter"):
            module.AdaptiveRateLimiter = old_limiter_for
    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
