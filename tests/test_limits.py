"""The adaptive rate limiter: schedule, FIFO, lateness, burst learning, noise vs limit, pause,
recovery (fake time, deterministic; one real-time test)."""

from __future__ import annotations

import math
import random
import time
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import ConfigError
from pipeline.limits import DEFAULT_RATE_LIMIT, AdaptiveRateLimiter, RateLimit


def _classic(**fields: Any) -> RateLimit:
    """The arithmetic of these unit tests: no margin, halve on a limit, settle 2 s, search to
    10 % under, holds of exactly hold_s, no start-up wait before the second token, no margin
    learnt for timing noise (an isolated refusal is a dip: tests/test_limits_spread.py has
    the margin).

    The defaults are tuned by the benchmarks (bench/throughput.py); the rules are the same.
    """
    return RateLimit(
        **{"decrease": 0.5, "settle_s": 2.0, "headroom": 0.1, "margin": 0.0, "startup_s": 0.0,
           "spread_cap": 0.0, **fields}
    )  # fmt: skip


def refuse_hard(limiter: AdaptiveRateLimiter, retry_after: float | None = None) -> None:
    """Several refusals at once, without tickets: a limit, not noise."""
    for _ in range(limiter.limit.limit_refusals):
        limiter.on_rate_limited(retry_after)


class FakeTime:
    """A clock that only moves when the limiter sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await anyio.lowlevel.checkpoint()  # let other tasks run, as a real sleep would


def make(limit: RateLimit) -> tuple[AdaptiveRateLimiter, FakeTime]:
    fake = FakeTime()
    return AdaptiveRateLimiter(limit, clock=fake, sleep=fake.sleep), fake


def max_in_window_excess(times: list[float], qps: float, burst: int) -> float:
    """How far the busiest window goes over ``burst + qps * T`` (<= 0: never)."""
    worst = -math.inf
    for i in range(len(times)):
        for j in range(i, len(times)):
            worst = max(worst, (j - i + 1) - (burst + qps * (times[j] - times[i])))
    return worst


# --- RateLimit ---------------------------------------------------------------------------


def test_rate_limit_defaults_and_derived_values() -> None:
    assert DEFAULT_RATE_LIMIT == RateLimit(qps=5.0, burst=1, min_qps=0.2, decrease=0.8)
    assert RateLimit(qps=8).recovery_per_s == pytest.approx(0.8)
    assert RateLimit(qps=8, increase_per_s=2).recovery_per_s == 2
    assert RateLimit(qps=8).floor == 0.2
    # A ceiling below the default floor is its own floor rather than an error.
    assert RateLimit(qps=0.1).floor == 0.1
    assert RateLimit(qps=50).ceiling == pytest.approx(49.0)
    # The range's ends are allowed.
    assert RateLimit(qps=0.01).qps == 0.01
    assert RateLimit(qps=10_000).qps == 10_000


def test_a_rate_out_of_range_says_the_range() -> None:
    with pytest.raises(ConfigError) as caught:
        RateLimit(qps=1e-300)
    message = str(caught.value)
    assert "qps must be a number from 0.01 to 10,000" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"qps": 0}, "qps"),
        ({"qps": math.nan}, "qps"),
        ({"qps": math.inf}, "qps"),
        ({"burst": 0}, "burst"),
        ({"burst": 1.5}, "burst"),
        ({"min_qps": -1}, "min_qps"),
        ({"decrease": 1.0}, "decrease"),
        ({"decrease": 0}, "decrease"),
        ({"increase_per_s": 0}, "increase_per_s"),
        ({"max_pause_s": -1}, "max_pause_s"),
        ({"headroom": 1.0}, "headroom"),
        ({"headroom": -0.1}, "headroom"),
        ({"hold_s": -1}, "hold_s"),
        ({"hold_s": math.nan}, "hold_s"),
        ({"qps": 1e-300}, "qps"),
        ({"qps": 0.009}, "qps"),
        ({"qps": 10_001}, "qps"),
        ({"qps": True}, "qps"),
        ({"min_qps": 1e-300}, "min_qps"),
        ({"margin": 0.5}, "margin"),
        ({"margin": -0.01}, "margin"),
        ({"noise_step": 0}, "noise_step"),
        ({"limit_refusals": 1}, "limit_refusals"),
    ],
)
def test_rate_limit_rejects_bad_values(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        RateLimit(**kwargs)  # type: ignore[arg-type]


# --- the bucket --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_steady_rate_is_qps() -> None:
    limiter, fake = make(_classic(qps=10, burst=1))
    times = []
    for _ in range(50):
        await limiter.acquire()
        times.append(fake.now)
    assert times[0] == 0.0
    assert times[-1] == pytest.approx(4.9)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(gap == pytest.approx(0.1) for gap in gaps)


@pytest.mark.anyio
async def test_burst_then_rate() -> None:
    limiter, fake = make(_classic(qps=2, burst=3))
    times = []
    for _ in range(5):
        await limiter.acquire()
        times.append(fake.now)
    assert times == pytest.approx([0.0, 0.0, 0.0, 0.5, 1.0])
    # Idle time refills the bucket, but never beyond the burst.
    fake.now += 100
    start = fake.now
    for _ in range(4):
        await limiter.acquire()
    assert fake.now - start == pytest.approx(0.5)


@pytest.mark.anyio
async def test_tickets_count_up() -> None:
    limiter, _ = make(_classic(qps=100, burst=3))
    assert [await limiter.acquire() for _ in range(3)] == [1, 2, 3]
    assert limiter.stats.acquired == 3


_steps = st.lists(
    st.one_of(
        st.tuples(st.just("acquire"), st.integers(1, 6)),
        st.tuples(st.just("idle"), st.floats(0, 3)),
        st.tuples(st.just("success"), st.just(0)),
        st.tuples(st.just("limited"), st.none() | st.floats(0, 2)),
        st.tuples(st.just("limited_ticket"), st.none() | st.floats(0, 2)),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(
    qps=st.floats(0.5, 50),
    burst=st.integers(1, 5),
    steps=_steps,
)
def test_never_more_than_burst_plus_qps_times_t(
    qps: float, burst: int, steps: list[tuple[str, object]]
) -> None:
    limit = _classic(qps=qps, burst=burst, increase_per_s=qps)
    limiter, fake = make(limit)
    grants: list[float] = []
    observed: list[float] = []

    async def script() -> None:
        ticket = 0
        for kind, arg in steps:
            if kind == "acquire":
                for _ in range(int(arg)):  # type: ignore[call-overload]
                    ticket = await limiter.acquire()
                    grants.append(fake.now)
            elif kind == "idle":
                fake.now += float(arg)  # type: ignore[arg-type]
            elif kind == "success":
                limiter.on_success()
            else:
                retry_after = arg if arg is None else float(arg)  # type: ignore[arg-type]
                given_ticket = ticket if kind == "limited_ticket" else None
                limiter.on_rate_limited(retry_after, ticket=given_ticket)
            observed.append(limiter.current_qps)

    anyio.run(script)
    assert max_in_window_excess(grants, qps, burst) <= 1e-6
    assert all(limit.floor - 1e-12 <= rate <= qps + 1e-12 for rate in observed)


def test_window_checker_catches_a_violation() -> None:
    # The property above is only as good as its checker.
    assert max_in_window_excess([0.0, 0.0, 0.05], qps=10, burst=1) > 0
    assert max_in_window_excess([0.0, 0.1, 0.2], qps=10, burst=1) <= 1e-9


# --- fairness and cancellation -----------------------------------------------------------


@pytest.mark.anyio
async def test_waiters_are_served_in_arrival_order() -> None:
    limiter, _ = make(_classic(qps=10, burst=1))
    rng = random.Random(7)
    arrivals: list[int] = []
    grants: list[int] = []

    async def worker(n: int, delay_checkpoints: int) -> None:
        for _ in range(delay_checkpoints):
            await anyio.lowlevel.checkpoint()
        arrivals.append(n)
        await limiter.acquire()
        grants.append(n)

    async with anyio.create_task_group() as tg:
        for n in range(30):
            tg.start_soon(worker, n, rng.randrange(20))
    assert sorted(arrivals) == list(range(30))
    assert arrivals != list(range(30))  # the random delays did shuffle the arrivals
    assert grants == arrivals


@pytest.mark.anyio
async def test_cancelled_waiter_takes_no_token() -> None:
    limiter = AdaptiveRateLimiter(_classic(qps=20, burst=1))
    await limiter.acquire()
    with anyio.move_on_after(0.01) as scope:
        await limiter.acquire()
    assert scope.cancelled_caught
    assert limiter.stats.acquired == 1
    start = time.monotonic()
    await limiter.acquire()
    assert time.monotonic() - start < 0.1
    assert limiter.stats.acquired == 2


# --- slowing down ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_an_isolated_refusal_is_a_small_step_several_are_a_decrease() -> None:
    limiter, fake = make(_classic(qps=4, burst=1))
    await limiter.acquire()
    limiter.on_rate_limited(None)
    assert limiter.current_qps == pytest.approx(4 * 0.97)
    assert (limiter.stats.noise_steps, limiter.stats.limits) == (1, 0)
    refuse_hard(limiter)  # now several close together: a limit, from the rate they came at
    assert limiter.current_qps == pytest.approx(2.0)
    assert limiter.stats.limits == 1
    times = []
    for _ in range(3):
        await limiter.acquire()
        times.append(fake.now)
    # The token after the refusal keeps its place in the schedule; then the new rate.
    assert times == pytest.approx([0.25, 0.75, 1.25])


@pytest.mark.anyio
async def test_rate_limited_drops_the_saved_up_burst() -> None:
    limiter, fake = make(_classic(qps=4, burst=5))
    fake.now += 10  # idle: five tokens saved up
    limiter.on_rate_limited(None)
    start = fake.now
    times = []
    for _ in range(3):
        await limiter.acquire()
        times.append(fake.now - start)
    interval = 1 / limiter.current_qps
    assert times == pytest.approx([0.0, interval, 2 * interval])


@pytest.mark.anyio
async def test_retry_after_pauses_every_waiter_and_allows_no_burst_after() -> None:
    limiter, fake = make(_classic(qps=10, burst=5, max_pause_s=60))
    await limiter.acquire()
    limiter.on_rate_limited(4.0)  # whole seconds: the run pauses for the 3 that are certain
    assert limiter.stats.pauses == 1
    times: list[float] = []

    async def worker() -> None:
        await limiter.acquire()
        times.append(fake.now)

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(worker)
    assert min(times) >= 3.0 - 1e-9
    # After the pause: one token at once, then the (stepped-down) rate, not a burst of five.
    interval = 1 / limiter.current_qps
    assert sorted(times) == pytest.approx([3.0 + i * interval for i in range(4)])


@pytest.mark.anyio
async def test_a_pause_can_be_extended_but_not_shortened() -> None:
    limiter, fake = make(_classic(qps=10, max_pause_s=60))
    limiter.on_rate_limited(6.0)  # a pause until 5.0
    limiter.on_rate_limited(2.0)  # until 1.0: no change
    assert limiter.stats.pauses == 1
    fake.now = 2.0
    limiter.on_rate_limited(5.0)  # until 6.0: later than 5.0
    assert limiter.stats.pauses == 2
    await limiter.acquire()
    assert fake.now == pytest.approx(6.0)


@pytest.mark.anyio
@pytest.mark.parametrize("retry_after", [0.0, -3.0, math.nan, math.inf])
async def test_retry_after_is_sanitised(retry_after: float) -> None:
    limiter, fake = make(_classic(qps=10, burst=1, max_pause_s=30))
    await limiter.acquire()
    limiter.on_rate_limited(retry_after)
    await limiter.acquire()
    if retry_after == math.inf:
        assert fake.now == pytest.approx(30.0)  # capped at max_pause_s
    else:
        assert fake.now == pytest.approx(0.1)  # no pause: the token keeps its place


@pytest.mark.anyio
async def test_one_burst_of_refusals_decreases_once() -> None:
    limiter, fake = make(_classic(qps=8, burst=8))
    tickets = [await limiter.acquire() for _ in range(8)]
    for ticket in tickets:
        limiter.on_rate_limited(None, ticket=ticket)
    # The first is a noise step; the third makes several: one limit, from 8; the rest were
    # sent before it and say nothing new.
    assert limiter.current_qps == 4.0
    assert (limiter.stats.noise_steps, limiter.stats.limits) == (1, 1)
    assert limiter.stats.ignored == 6
    # A request sent after the limit (on schedule, not early) and refused within ten
    # intervals of it: still over the limit, another limit at once.
    fake.now += 1.0
    late = await limiter.acquire()
    limiter.on_rate_limited(None, ticket=late)
    assert limiter.current_qps == 2.0
    # After a clean run (50 intervals at 2/s), alone: a dip.
    fake.now += 30.0
    later = await limiter.acquire()
    limiter.on_rate_limited(None, ticket=later)
    assert limiter.current_qps == pytest.approx(2 * 0.97)


@pytest.mark.anyio
async def test_without_tickets_refusals_within_one_interval_count_once() -> None:
    limiter, fake = make(_classic(qps=8, burst=8))
    for _ in range(8):
        await limiter.acquire()
    for _ in range(6):
        limiter.on_rate_limited(None)
        fake.now += 0.01
    assert limiter.current_qps == 4.0
    assert limiter.stats.limits == 1
    assert limiter.stats.ignored == 4
    fake.now += 0.25  # one interval at 4 qps since the limit: news, and still descending
    limiter.on_rate_limited(None)
    assert limiter.current_qps == 2.0


@pytest.mark.anyio
async def test_ignored_refusal_still_honours_its_retry_after() -> None:
    limiter, fake = make(_classic(qps=8, burst=2))
    first, second = await limiter.acquire(), await limiter.acquire()
    limiter.on_rate_limited(None, ticket=first)
    limiter.on_rate_limited(3.0, ticket=second)
    assert limiter.stats.decreases == 1
    await limiter.acquire()
    assert fake.now == pytest.approx(2.0)


@pytest.mark.anyio
@pytest.mark.parametrize(("retry_after", "paused_until"), [(1.0, 0.0), (0.5, 0.0), (2.0, 1.0)])
async def test_the_run_pauses_only_for_the_certain_part_of_retry_after(
    retry_after: float, paused_until: float
) -> None:
    # "Retry-After: 1" may stand for a few milliseconds: the refused request waits it out
    # (the runner's retry), the run as a whole only slows down.
    limiter, fake = make(_classic(qps=1000, burst=1, max_pause_s=60))
    await limiter.acquire()
    limiter.on_rate_limited(retry_after)
    await limiter.acquire()
    assert fake.now == pytest.approx(max(paused_until, 1 / 1000))


def test_decreases_stop_at_the_floor() -> None:
    fake = FakeTime()
    limiter = AdaptiveRateLimiter(_classic(qps=5, min_qps=0.3), clock=fake, sleep=fake.sleep)
    for _ in range(20):
        fake.now += 100
        refuse_hard(limiter)
    assert limiter.current_qps == 0.3
    assert limiter.stats.limits == 20


# --- real time ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_twenty_tasks_at_twenty_qps_take_about_one_second() -> None:
    limiter = AdaptiveRateLimiter(_classic(qps=20, burst=1))
    stamps: list[float] = []

    async def worker() -> None:
        await limiter.acquire()
        stamps.append(time.monotonic())

    start = time.monotonic()
    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(worker)
    elapsed = time.monotonic() - start
    # The first token is immediate, the 19 others come 50 ms apart: 0.95 s.
    assert 0.9 <= elapsed <= 1.5
    assert len(stamps) == 20
