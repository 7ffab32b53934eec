"""Request-rate limiting for a run: a schedule in virtual time whose rate adapts to refusals.

Every attempt (first tries and retries alike) takes a token from one limiter per run; waiters
are served in arrival order.

**Schedule (GCRA).** Tokens follow a theoretical arrival time ``TAT`` that advances by one
interval ``1/rate`` per token; a token may go at ``TAT - (burst - 1) / ceiling`` (a time, so
a slower rate does not widen the burst). A waiter that wakes late (the event loop was busy)
is booked at the instant it was due, not at the instant it woke, so the next token comes
that much sooner: lateness is made up (at most one interval of it) instead of lost. Idle
time is not made up: a token taken without waiting is booked when taken. A known limit
(``qps``) is paced ``margin`` under, so that timing noise between client and server does not
show as requests over the limit.

**Burst tolerance, learnt.** Making up lateness sends two requests closer than one interval.
A server that keeps a burst of two tolerates that; a burst-1 server refuses it. Each token
records whether it went early that way; a refusal of such a token, while refusals are
isolated, teaches a minimum gap instead of slowing down: first ``1 - margin / 2`` of an
interval (lateness is made up within the margin only), then a whole interval.

**Start-up.** The first request of a run reaches the server later than the next one (a new
connection, code run for the first time on both sides: 10-30 ms measured on a busy machine);
a server without burst then refuses the second as early. Without burst (``burst`` 1) the
second token waits ``startup_s`` more than an interval: once per run, a fraction of a
percent.

**Timing noise, learnt.** A refusal of a token that went on schedule, alone (not
``limit_refusals`` within ten intervals) and at a rate the run trusts (the ceiling, or the
good rate it holds), widens a margin added to every interval (``pipeline.spread``: 1 %, then
half as wide again each time, at most ``spread_cap``; narrowed after 200 clean tokens) and
leaves the rate alone; a limit undoes what its own refusals widened. Requests
reach the server's clock after delays that differ from one to the next; against a server
without burst a delay that shrinks from one request to the next shows as a request early,
whatever the rate. Only when the margin is at its cap does a refusal on schedule count as
below.

**Rate: noise or limit.** A refusal of a token that went on schedule says the rate is too
fast, or that one request met timing noise (a burst-1 server refuses any request that
arrives a hair early, and a loaded machine delays one request more than the next). They are
told apart by what follows. A refusal after a clean run (no dip or limit for 50 intervals,
at least 2 s) is a dip: ``noise_step`` lower for ``max(2 settle_s, 20 intervals)``, then
back, and the search below is untouched. Refused again before a clean run, or
``limit_refusals`` close together (ten intervals), is a limit: down from the rate the first
of them came at to the rate the server admitted meanwhile (tokens of the last ten intervals
less their refusals, per second; a server over its limit still admits about its limit), by
``decrease`` at least and by half at most; one more refusal on schedule within ten intervals
of a limit is another limit (the descent from a far too high ``qps`` costs one refusal a
step, not three).

**Search.** After a limit the rate searches between the last good rate and the refused one:
it climbs to the midpoint (at most ``headroom`` under the refused rate) and, once that holds
for ``settle_s``, takes it as the new good rate; a limit on the way sets a new refused rate
and drops the run back to the good rate. When good and refused are within ``headroom`` the
run holds the good rate, then probes higher by ``increase_per_s``; reaching the refused rate
without a limit forgets both. The hold starts at ``max(2 settle_s, 40 intervals)`` and doubles
(up to ``hold_s``) each time the same rate is refused again below the ceiling: a real limit is
probed rarely.

**One burst, one decrease.** When the server starts refusing, every request already sent may
come back 429; those describe the old rate, not the new one. A refusal changes the rate only
if its request was sent after the last change (the ticket ``acquire()`` returns, passed back
as ``on_rate_limited(..., ticket=t)``). Without a ticket: after a change, refusals within one
interval at the new rate are ignored. Every refusal honours the certain part of Retry-After
(whole seconds rounded up: "N" means a wait in (N-1, N]): no token before it has passed.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

from pipeline.errors import ConfigError
from pipeline.rate_search import RateSearch
from pipeline.spread import SpreadMargin, SpreadRules

# Float rounding must not turn "exactly on time" into an endless run of tiny sleeps.
_EPSILON = 1e-9
MIN_QPS = 0.01
MAX_QPS = 10_000.0
# Tickets remembered for classifying their refusals: far more than can be in flight at once.
_TICKET_MEMORY = 8192


@dataclass(frozen=True)
class RateLimit:
    """How fast a run may start requests.

    ``qps`` is the ceiling (the server's limit when known), paced ``margin`` under; ``burst``
    the requests that may start back to back; ``min_qps`` the floor that decreases stop at (a
    ``qps`` below it is its own floor); ``decrease`` the factor for a limit (several refusals
    close together) and ``noise_step`` the step for an isolated refusal; ``limit_refusals`` how
    many make "several"; ``startup_s`` the extra wait before the second token without burst,
    ``spread_cap`` the widest margin for timing noise, in intervals (0: none; module
    docstring); ``increase_per_s`` the recovery per second of successes (``None``:
    ``qps / 10``); ``max_pause_s`` the longest Retry-After honoured (a bad header must not stall
    a run for hours); ``settle_s``, ``headroom`` and ``hold_s`` steer the search for the
    server's limit (module docstring).
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
    margin: float = 0.02
    noise_step: float = 0.03
    limit_refusals: int = 3
    startup_s: float = 0.05
    spread_cap: float = 0.25

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise ConfigError("invalid rate limit: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        problems = []
        if not (_number(self.qps) and MIN_QPS <= self.qps <= MAX_QPS):
            problems.append(
                f"qps must be a number from {MIN_QPS:g} to {MAX_QPS:,.0f} requests per second "
                f"(got {self.qps!r})"
            )
        for name, low in (("burst", 1), ("limit_refusals", 2)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                problems.append(f"{name} must be a whole number of at least {low} (got {value!r})")
        if not (_number(self.min_qps) and MIN_QPS <= self.min_qps <= MAX_QPS):
            problems.append(
                f"min_qps must be from {MIN_QPS:g} to {MAX_QPS:,.0f} (got {self.min_qps!r})"
            )
        for name in ("decrease", "noise_step"):
            value = getattr(self, name)
            if not (_number(value) and 0 < value < 1):
                problems.append(f"{name} must be between 0 and 1 (got {value!r})")
        if self.increase_per_s is not None and not (
            _number(self.increase_per_s) and self.increase_per_s > 0
        ):
            problems.append(f"increase_per_s must be above 0 (got {self.increase_per_s!r})")
        for name in ("headroom", "margin", "spread_cap"):
            value = getattr(self, name)
            if not (_number(value) and 0 <= value < 0.5):
                problems.append(f"{name} must be from 0 to below 0.5 (got {value!r})")
        for name in ("max_pause_s", "settle_s", "hold_s", "startup_s"):
            value = getattr(self, name)
            if not (_number(value) and value >= 0):
                problems.append(f"{name} must be 0 or more seconds (got {value!r})")
        return problems

    @property
    def floor(self) -> float:
        """The lowest rate a decrease can reach."""
        return min(self.min_qps, self.qps)

    @property
    def ceiling(self) -> float:
        """The highest rate paced: ``qps`` less the margin."""
        return self.qps * (1.0 - self.margin)

    @property
    def recovery_per_s(self) -> float:
        """Requests per second added back for every second of successes."""
        return self.qps / 10 if self.increase_per_s is None else self.increase_per_s


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


DEFAULT_RATE_LIMIT = RateLimit()


@dataclass(frozen=True)
class LimiterStats:
    """A snapshot of what the limiter has done so far."""

    acquired: int
    decreases: int  # rate changes down, noise steps and limits alike
    ignored: int  # rate-limit answers that did not decrease the rate (same burst)
    pauses: int  # Retry-After pauses that started or extended the run's pause
    current_qps: float
    refused_qps: float | None = None  # the last rate the server refused, while remembered
    good_qps: float | None = None  # the last rate kept for settle_s without a refusal
    noise_steps: int = 0  # isolated refusals: a small step
    limits: int = 0  # several refusals close together: a real decrease
    min_gap: float = 0.0  # learnt: the shortest gap between tokens, in intervals
    made_up_s: float = 0.0  # lateness of the event loop made up by the schedule
    spread: float = 0.0  # learnt: the margin for timing noise, a share of the interval
    widened: int = 0  # isolated refusals answered by widening that margin


# The minimum gap between two tokens, in intervals, as the server's refusals teach it.
def _gap_levels(margin: float) -> tuple[float, ...]:
    return (0.0, 1.0 - margin / 2, 1.0)


class _Tickets:
    """For each recent ticket: the rate it was paced at and whether it went early."""

    def __init__(self) -> None:
        self._first = 1
        self._rates: deque[float] = deque(maxlen=_TICKET_MEMORY)
        self._early: deque[bool] = deque(maxlen=_TICKET_MEMORY)

    def add(self, ticket: int, rate: float, early: bool) -> None:
        if len(self._rates) == _TICKET_MEMORY:
            self._first += 1
        self._rates.append(rate)
        self._early.append(early)
        assert ticket == self._first + len(self._rates) - 1

    def get(self, ticket: int | None) -> tuple[float, bool] | None:
        if ticket is None or not 0 <= ticket - self._first < len(self._rates):
            return None
        i = ticket - self._first
        return self._rates[i], self._early[i]


class AdaptiveRateLimiter:
    """Tokens on a schedule in front of every attempt, slowed down by rate-limit answers.

    Use one per run, from the tasks of one event loop (anyio, asyncio backend). ``clock`` and
    ``sleep`` are injectable so tests can run on a fake clock.
    """

    def __init__(
        self,
        limit: RateLimit = DEFAULT_RATE_LIMIT,
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
        self._search = RateSearch(limit, now)
        self._tolerance = (limit.burst - 1) / limit.ceiling
        self._tat = now - self._tolerance  # the schedule (GCRA)
        self._last_issue: float | None = None
        self._paused_until = now
        self._gap_levels = _gap_levels(limit.margin)
        self._gap_level = 0
        self._gap_learnt_at: tuple[float, int] | None = None  # (when, level before)
        self._tickets = _Tickets()
        self._spread = SpreadMargin(SpreadRules(cap=limit.spread_cap))
        self._recent: deque[float] = deque()  # refusals since the last limit, for density
        self._sent: deque[float] = deque(maxlen=_TICKET_MEMORY)  # when recent tokens went
        self._issued = 0
        self._changed_at: float | None = None  # last decrease (for callers without tickets)
        self._issued_at_change = 0
        self._issued_at_limit = 0
        self._limit_at: float | None = None
        self._last_refusal: float | None = None  # the last dip or limit
        self._cluster_rate: float | None = None  # the rate the first refusal of a cluster came at
        self._decreases = self._ignored = self._pauses = self._noise = self._limits = 0
        self._made_up = 0.0

    @property
    def limit(self) -> RateLimit:
        return self._limit

    @property
    def current_qps(self) -> float:
        return self._search.qps

    @property
    def stats(self) -> LimiterStats:
        return LimiterStats(
            acquired=self._issued,
            decreases=self._decreases,
            ignored=self._ignored,
            pauses=self._pauses,
            current_qps=self._search.qps,
            refused_qps=self._search.refused,
            good_qps=self._search.good,
            noise_steps=self._noise,
            limits=self._limits,
            min_gap=self._gap_levels[self._gap_level],
            made_up_s=self._made_up,
            spread=self._spread.share,
            widened=self._spread.widened,
        )

    async def acquire(self) -> int:
        """Wait for a token, in arrival order; return this attempt's ticket.

        Pass the ticket to ``on_rate_limited`` so that a burst of refusals counts once.
        Cancelling a waiter consumes no token.
        """
        async with self._lock:
            due: float | None = None
            # Re-check after every sleep: a pause or a decrease may have come in meanwhile.
            while (wait := self._wait_time(now := self._clock())) > 0:
                due = now + wait
                await self._sleep(wait)
            self._issue(self._clock(), due)
            return self._issued

    def on_rate_limited(
        self, retry_after: float | None = None, *, ticket: int | None = None
    ) -> None:
        """The server refused an attempt for its rate: learn, slow down, pause if it said so."""
        now = self._clock()
        self._classify(now, ticket)
        # No saved-up burst into a server that has just refused.
        self._tat = max(self._tat, now + self._tolerance)
        # Retry-After is whole seconds rounded up, so N means "somewhere in (N-1, N]". The
        # refused request itself waits the full N (the runner's retry does); the rest of the
        # run pauses only for the part that is certain. Pausing everyone for a "1" that
        # stands for a few milliseconds costs a second of the whole run per refusal.
        # NaN compares false: no pause. Infinity (or any huge value) is capped.
        if retry_after is not None and retry_after > 1:
            self._pause(now, min(retry_after - 1.0, self._limit.max_pause_s))

    def on_success(self) -> None:
        """An attempt got through: raise the rate by the time passed since the last change."""
        self._search.raise_to(self._clock())

    def _interval(self) -> float:
        return (1.0 + self._spread.share) / self._search.qps

    def _wait_time(self, now: float) -> float:
        interval = self._interval()
        earliest = max(self._tat - self._tolerance, self._paused_until)
        if self._last_issue is not None:
            gap = self._gap_levels[self._gap_level] * interval
            startup = self._limit.startup_s
            if self._issued == 1 and self._limit.burst == 1 and startup > 0:
                gap = max(gap, interval + startup)
            earliest = max(earliest, self._last_issue + gap)
        wait = earliest - now
        return wait if wait > _EPSILON else 0.0

    def _issue(self, now: float, due: float | None) -> None:
        interval = self._interval()
        # A waiter that woke late is booked when it was due (at most one interval back): the
        # next token comes that much sooner. A token taken without waiting is booked now.
        booked = now if due is None else max(due, now - interval)
        self._made_up += now - booked
        self._tat = max(self._tat, booked) + interval
        early = self._last_issue is not None and now - self._last_issue < interval * (1 - 1e-6)
        self._last_issue = now
        self._issued += 1
        self._sent.append(now)
        self._spread.issued()
        self._tickets.add(self._issued, self._search.qps, early)

    def _classify(self, now: float, ticket: int | None) -> None:
        """Tell a refusal of an early token, a noise refusal and a limit apart (docstring)."""
        if self._before_last_limit(now, ticket):
            self._ignored += 1  # sent before the last limit: already answered for
            return
        record = self._tickets.get(ticket)
        rate, early = record if record is not None else (self._search.qps, False)
        window = self._window()
        while self._recent and now - self._recent[0] > window:
            self._recent.popleft()
        if not self._recent:
            self._cluster_rate = rate
        self._recent.append(now)
        # Refused right after a limit: still over it, keep descending. Early or not: while
        # the rate is over the limit, an early token says nothing about the server's burst.
        descending = self._limit_at is not None and now - self._limit_at < window
        lesson = early and (self._limit_at is None or now - self._limit_at >= self._clean_s())
        if descending or len(self._recent) >= self._limit.limit_refusals:
            self._on_limit(now)
        elif lesson and self._gap_level + 1 < len(self._gap_levels):
            learnt = self._gap_learnt_at
            if learnt is None or now - learnt[0] > window:
                self._gap_learnt_at = (now, self._gap_level)  # the level before this cluster
            self._gap_level += 1
            self._ignored += 1
        elif not self._is_new_signal(now, ticket):
            self._ignored += 1
        elif self._trusted() and self._spread.widen(now, window):
            # Timing noise at a rate the run trusts: a wider margin, the rate stays. Tokens
            # already sent went at the old margin: their refusals are this one's.
            self._changed_at = now
            self._issued_at_change = self._issued
        elif self._last_refusal is not None and now - self._last_refusal < self._clean_s():
            self._on_limit(now)  # refused again before a clean run: several, if spread out
        else:
            self._spread.refused()
            self._last_refusal = now
            self._noise += 1
            self._search.dip(now, 1.0 - self._limit.noise_step, self._dip_s())
            self._changed_at = now
            self._issued_at_change = self._issued
            self._decreases += 1

    def _trusted(self) -> bool:
        # The user's ceiling or the good rate being held: a refusal there is noise until the
        # margin runs out. Between the two the search is climbing or probing, and a refusal
        # there is its answer.
        search = self._search
        good = search.good
        return search.qps >= self._limit.ceiling * (1 - 1e-9) or (
            good is not None and search.qps <= good * (1 + 1e-9)
        )

    def _before_last_limit(self, now: float, ticket: int | None) -> bool:
        if ticket is not None:
            return ticket <= self._issued_at_limit
        return self._limit_at is not None and now - self._limit_at < 1.0 / self._search.qps

    def _window(self) -> float:
        # Ten intervals: three refusals in ten tokens is a refusal rate no timing noise makes.
        return 10.0 / self._search.qps

    def _clean_s(self) -> float:
        # A clean run: fifty intervals (at least 2 s) without a refusal on schedule.
        return max(2.0, 50.0 / self._search.qps)

    def _dip_s(self) -> float:
        # Long enough to let a burst of timing noise pass, short enough to cost little.
        return max(2 * self._limit.settle_s, 20.0 / self._search.qps)

    def _on_limit(self, now: float) -> None:
        # Several refusals close together: the rate is over the limit, and any gap learnt
        # from them meanwhile was the rate's doing, not the server's burst.
        learnt = self._gap_learnt_at
        if learnt is not None and now - learnt[0] <= self._window():
            self._gap_level = learnt[1]
        self._gap_learnt_at = None
        self._limits += 1
        self._spread.undo(now, self._window())
        self._last_refusal = now
        refused = self._cluster_rate or self._search.qps
        self._decrease(now, refused, self._factor(now, refused))
        self._issued_at_limit = self._issued
        self._limit_at = now
        self._recent.clear()

    def _factor(self, now: float, refused: float) -> float:
        # While over its limit a server still admits about its limit: the tokens of the
        # window less its refusals, per second. Down to that (at most halving), not by a
        # fixed step: from a far too high qps one limit instead of a staircase of them.
        start = now - self._window()
        sent = [t for t in self._sent if t >= start]
        if len(sent) < 2 * self._limit.limit_refusals:
            return self._limit.decrease
        admitted = (len(sent) - len(self._recent)) / (now - sent[0] + 1.0 / self._search.qps)
        return min(self._limit.decrease, max(0.5, admitted / refused))

    def _is_new_signal(self, now: float, ticket: int | None) -> bool:
        if self._changed_at is None:
            return True
        if ticket is not None:
            return ticket > self._issued_at_change
        return now - self._changed_at >= 1.0 / self._search.qps

    def _decrease(self, now: float, refused: float, factor: float) -> None:
        self._search.decrease(now, refused, factor)
        self._changed_at = now
        self._issued_at_change = self._issued
        self._decreases += 1

    def _pause(self, now: float, seconds: float) -> None:
        until = now + seconds
        if until <= self._paused_until:
            return
        self._pauses += 1
        self._paused_until = until
        # After the pause the run restarts at its rate, not with a burst.
        self._tat = max(self._tat, until + self._tolerance)
        self._search.paused(until)
