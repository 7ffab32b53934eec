"""The rate of a run's limiter and its search for the server's limit (``pipeline.limits``).

Between a good rate (kept for ``settle_s`` without a limit) and a refused one, the rate climbs
to the midpoint, holds when the two are within ``headroom``, then probes; an isolated refusal
is a dip that leaves the search alone. The rules are told in ``pipeline.limits``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.limits import RateLimit


class RateSearch:
    """The rate, and the search for the server's limit between a good and a refused rate."""

    def __init__(self, limit: RateLimit, now: float) -> None:
        self.limit = limit
        self.qps = limit.ceiling
        self.changed_at = now  # last change: recovery counts from here
        self.refused: float | None = None  # too fast: the rate of the last refusal
        self.good: float | None = None  # kept for settle_s without a refusal
        self.settle_until: float | None = None  # after a plain decrease: keep the rate
        self.held_since: float | None = None  # when the rate reached its current target
        self.hold_s = self._first_hold(self.qps)
        self.last_refused: tuple[float, float] | None = None  # (rate, when), never forgotten
        self._dip: tuple[float, float] | None = None  # (rate before, until): a noise step

    def _first_hold(self, rate: float) -> float:
        # In tokens as well as seconds: a probe costs a refusal, which must stay a small
        # share of the requests at a low rate too.
        return min(self.limit.hold_s, max(2 * self.limit.settle_s, 40 / rate))

    @property
    def dipped(self) -> bool:
        return self._dip is not None

    def dip(self, now: float, factor: float, seconds: float) -> None:
        """An isolated refusal: a step down for ``seconds``, then back; the search is untouched
        (one refusal says nothing about where the limit is)."""
        self._dip = (self.qps, now + seconds)
        self.qps = max(self.limit.floor, self.qps * factor)
        self.changed_at = max(self.changed_at, now)

    def raise_to(self, now: float) -> None:
        """Successes from ``changed_at`` to ``now``: climb, settle, hold or probe."""
        if self._dip is not None:
            before, until = self._dip
            if now < until:
                return
            self._dip = None
            self.qps = max(self.qps, before)
            self.changed_at = max(self.changed_at, until)
        if now <= self.changed_at:
            return  # still inside a pause, or no time has passed
        self.qps = self._raised(now)
        self.changed_at = now

    def _raised(self, now: float) -> float:
        limit = self.limit
        start = self.changed_at
        if self.settle_until is not None:
            if now < self.settle_until:
                return self.qps
            start = max(start, self.settle_until)
            self.settle_until = None
            self.good = self.qps
            self.held_since = start
        refused = self.refused
        if refused is None:
            return min(limit.ceiling, self.qps + limit.recovery_per_s * (now - start))
        target = self._target(refused)
        if self.qps < target:
            climbed = self.qps + limit.recovery_per_s * (now - start)
            if climbed < target:
                return climbed
            self.held_since = now
            return target
        if self.held_since is None:
            self.held_since = start
        if self.good is None or target > self.good:
            # Still searching: a target kept for settle_s is good, and the next one is higher.
            if now - self.held_since >= limit.settle_s:
                self.good = self.qps
                self.held_since = now
            return self.qps
        probe_from = max(start, self.held_since + self.hold_s)
        if now <= probe_from:
            return self.qps
        raised = min(limit.ceiling, self.qps + limit.recovery_per_s * (now - probe_from))
        if raised >= refused:
            # The server takes now what it refused then: start learning afresh.
            self.refused = self.good = None
        return raised

    def _target(self, refused: float) -> float:
        limit = self.limit
        below = refused * (1.0 - limit.headroom)
        good = self.good
        if good is None:
            target = below
        elif refused - good <= limit.headroom * refused * (1 + 1e-9):
            target = good  # close enough: stay at the good rate
        else:
            target = min((good + refused) / 2, below)
        return min(limit.ceiling, max(limit.floor, target))

    def decrease(self, now: float, refused: float, factor: float) -> None:
        """The server refused ``refused``: drop by ``factor``, or back to the good rate."""
        limit = self.limit
        self._dip = None
        last = self.last_refused
        # The same rate refused again: probe it less often. Not at the ceiling, which the user
        # gave as the limit: a refusal there is timing noise far more often than not.
        again = (
            refused < limit.ceiling * (1 - 1e-9)
            and last is not None
            and refused >= last[0] * (1 - limit.headroom)
            and now - last[1] < 4 * limit.hold_s
        )
        self.hold_s = min(limit.hold_s, 2 * self.hold_s) if again else self._first_hold(refused)
        self.last_refused = (refused, now)
        self.refused = refused
        self.held_since = None
        good = self.good
        if good is not None and good < refused:
            # Back to the last rate that held, no lower: the limit lies between the two.
            self.qps = min(self.qps, good)
            self.settle_until = None
        else:
            # No good rate under it (or the good rate was refused after all: a server burst
            # hid a small excess for a while): step down and see whether that holds.
            self.good = None
            self.qps = max(limit.floor, min(self.qps, refused * factor))
            self.settle_until = now + limit.settle_s
        self.changed_at = max(self.changed_at, now)

    def paused(self, until: float) -> None:
        # Time spent paused is not time spent succeeding: recovery starts after the pause,
        # and a rate is not known good before it has been kept for settle_s after it.
        self.changed_at = max(self.changed_at, until)
        if self.settle_until is not None:
            self.settle_until = max(self.settle_until, until + self.limit.settle_s)
