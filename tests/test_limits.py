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
    10 % under, holds of exactly hold_s.

    The defaults are tuned by the benchmarks (bench/throughput.py); the rules are the same.
    """
    return RateLimit(**{"decrease": 0.5, "settle_s": 2.0, "headroom": 0.1, "margin": 0.0, **fields})


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


# --- the schedule: margin, lateness, burst tolerance ---------------------------------------


class LateTime(FakeTime):
    """A fake clock whose sleeps wake late, as a busy event loop's do."""

    def __init__(self, lateness: list[float]) -> None:
        super().__init__()
        self.lateness = lateness

    async def sleep(self, seconds: float) -> None:
        late = self.lateness[len(self.sleeps) % len(self.lateness)]
        await super().sleep(seconds + late)


async def _take(limiter: AdaptiveRateLimiter, clock: FakeTime, n: int) -> list[float]:
    times = []
    for _ in range(n):
        await limiter.acquire()
        times.append(clock.now)
    return times


@pytest.mark.anyio
async def test_a_known_limit_is_paced_a_margin_under() -> None:
    fake = FakeTime()
    limiter = AdaptiveRateLimiter(RateLimit(qps=50, margin=0.02), clock=fake, sleep=fake.sleep)
    times = await _take(limiter, fake, 101)
    assert times[-1] == pytest.approx(100 / (50 * 0.98))
    assert limiter.current_qps == pytest.approx(49.0)


@pytest.mark.anyio
async def test_lateness_is_made_up_on_schedule() -> None:
    # Every other wake is late by 40 % of an interval: a bucket would lose 20 % of the rate;
    # the schedule books each late token when it was due, so the rate is kept.
    interval = 0.1
    late = LateTime([0.4 * interval, 0.0])
    limiter = AdaptiveRateLimiter(_classic(qps=10), clock=late, sleep=late.sleep)
    times = await _take(limiter, late, 201)
    assert times[-1] == pytest.approx(200 * interval, abs=0.5 * interval)
    assert limiter.stats.made_up_s == pytest.approx(100 * 0.4 * interval)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) == pytest.approx(0.6 * interval)  # the made-up token goes early


@pytest.mark.anyio
async def test_at_most_one_interval_of_lateness_is_made_up() -> None:
    late = LateTime([0.35])  # every wake 3.5 intervals late: a stalled loop, not jitter
    limiter = AdaptiveRateLimiter(_classic(qps=10), clock=late, sleep=late.sleep)
    times = await _take(limiter, late, 11)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    # Each late token is booked at most one interval back: two may go at once, never three.
    assert min(gaps) == pytest.approx(0.0)
    assert min(a + b for a, b in zip(gaps, gaps[1:], strict=False)) >= 0.35 - 1e-9
    assert limiter.stats.made_up_s <= 10 * 0.1 + 1e-9


@pytest.mark.anyio
async def test_idle_time_is_not_made_up() -> None:
    limiter, fake = make(_classic(qps=10, burst=1))
    await limiter.acquire()
    fake.now += 5.0
    times = await _take(limiter, fake, 3)
    assert times == pytest.approx([5.0, 5.1, 5.2])


class BucketServer:
    """The local server's admission rule on a fake clock: ``rate``/s, ``burst`` saved up."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.stamp = float(burst), 0.0
        self.admitted = self.refused = 0

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            self.admitted += 1
            return True
        self.refused += 1
        return False


async def _serve(
    limiter: AdaptiveRateLimiter, clock: FakeTime, server: BucketServer, seconds: float
) -> None:
    """One worker that always has a request ready; refused requests go round again."""
    while clock.now < seconds:
        ticket = await limiter.acquire()
        if server.take(clock.now):
            limiter.on_success()
        else:
            limiter.on_rate_limited(1.0, ticket=ticket)


@pytest.mark.anyio
async def test_a_burst_1_server_teaches_a_minimum_gap_without_slowing_down() -> None:
    late = LateTime([0.0, 0.0, 0.0, 0.004])  # now and then 20 % of an interval late
    limit = RateLimit(qps=50, margin=0.02)
    limiter = AdaptiveRateLimiter(limit, clock=late, sleep=late.sleep)
    server = BucketServer(50, burst=1)
    await _serve(limiter, late, server, 20.0)
    stats = limiter.stats
    # Making up a whole lateness drew one refusal; from then on lateness is made up only
    # within the margin (gaps of at least 0.99 of an interval at 49/s: over 1/50 s).
    assert stats.min_gap == pytest.approx(0.99)
    assert server.refused == 1
    assert stats.noise_steps == stats.limits == 0
    assert limiter.current_qps == pytest.approx(49.0)
    # Better than a bucket that loses every lateness (4 ms every 4th token), under 49/s.
    assert 4 / (4 / 49 + 0.004) < server.admitted / 20.0 <= 49.0


@pytest.mark.anyio
async def test_a_burst_2_server_tolerates_made_up_lateness() -> None:
    late = LateTime([0.0, 0.0, 0.0, 0.004])
    limiter = AdaptiveRateLimiter(RateLimit(qps=50, margin=0.02), clock=late, sleep=late.sleep)
    server = BucketServer(50, burst=2)
    await _serve(limiter, late, server, 20.0)
    assert server.refused == 0
    assert limiter.stats.min_gap == 0.0
    assert limiter.stats.made_up_s > 0
    # The lateness is made up: the server sees the paced rate, not the late one.
    assert server.admitted / 20.0 == pytest.approx(49.0, rel=0.01)


@pytest.mark.anyio
async def test_several_early_refusals_at_once_are_a_limit_not_a_lesson() -> None:
    limiter, fake = make(_classic(qps=10, burst=4))
    tickets = await _take_tickets(limiter, 4)  # back to back: every one "early"
    for ticket in tickets[1:]:
        limiter.on_rate_limited(None, ticket=ticket)
    # Three at once: the rate's doing; the gap learnt from the first is undone.
    assert limiter.stats.limits == 1
    assert limiter.stats.min_gap == 0.0
    assert fake.now == 0.0


async def _take_tickets(limiter: AdaptiveRateLimiter, n: int) -> list[int]:
    return [await limiter.acquire() for _ in range(n)]


# --- noise and limits ------------------------------------------------------------------------


async def _tokens_in(seconds: float, refuse_at: float | None) -> int:
    """Tokens a saturated run takes at the ceiling, with one refusal at ``refuse_at``."""
    limiter, fake = make(RateLimit(qps=20))
    count = 0
    while fake.now < seconds:
        ticket = await limiter.acquire()
        count += 1
        if refuse_at is not None and fake.now >= refuse_at:
            limiter.on_rate_limited(1.0, ticket=ticket)
            refuse_at = None
        else:
            limiter.on_success()
    return count


@pytest.mark.anyio
async def test_one_noise_refusal_after_a_clean_run_costs_a_few_percent_briefly() -> None:
    clean = await _tokens_in(60.0, None)
    noisy = await _tokens_in(60.0, 30.0)
    assert clean == pytest.approx(60 * 20 * 0.98, abs=2)
    # A 3 % step for a few seconds: well under 1 % of a minute's tokens.
    assert 0.99 * clean <= noisy < clean
    limiter, fake = make(RateLimit(qps=20))
    limiter.on_rate_limited(1.0)
    assert limiter.current_qps == pytest.approx(20 * 0.98 * 0.97)


@pytest.mark.anyio
async def test_repeated_refusals_find_the_limit() -> None:
    # --qps 2R against a burst-1 server at R: dense refusals cut the rate, the search then
    # settles just under R and probes it rarely.
    limiter, fake = make(RateLimit(qps=40))
    server = BucketServer(20, burst=1)
    await _serve(limiter, fake, server, 60.0)
    assert 0.93 * 20 <= limiter.current_qps <= 20
    assert server.admitted >= 0.9 * 20 * 60
    assert server.refused / (server.admitted + server.refused) < 0.03
    assert limiter.stats.limits >= 1


@pytest.mark.anyio
async def test_a_limit_probed_again_and_again_is_probed_less_often() -> None:
    limiter, fake = make(RateLimit(qps=40, settle_s=0.5, hold_s=30))
    server = BucketServer(20, burst=1)
    await _serve(limiter, fake, server, 30.0)
    early = server.refused
    await _serve(limiter, fake, server, 120.0)
    # The first 30 s hold the search and its first probes; the next 90 s far fewer refusals.
    assert server.refused - early < early


# --- recovery ----------------------------------------------------------------------------


def test_without_a_refusal_recovery_is_additive_and_never_above_the_ceiling() -> None:
    fake = FakeTime()
    limit = _classic(qps=10, settle_s=0.0, hold_s=0.0)
    limiter = AdaptiveRateLimiter(limit, clock=fake, sleep=fake.sleep)
    refuse_hard(limiter)  # 10 -> 5, good 5 at once, target 7.5, then 9, then probe
    assert limiter.current_qps == 5.0
    rates = []
    for _ in range(40):  # 10 s of successes, one every 0.25 s
        fake.now += 0.25
        limiter.on_success()
        rates.append(limiter.current_qps)
    assert rates == sorted(rates)
    assert max(rates) == 10.0
    assert limiter.stats.refused_qps is None  # reached 10 again: forgotten
    fake.now += 1
    limiter.on_success()
    assert limiter.current_qps == 10.0


def test_after_a_limit_settles_searches_holds_then_probes() -> None:
    fake = FakeTime()
    limit = _classic(qps=40, settle_s=2.0, headroom=0.1, hold_s=5.0)  # recovery 4/s
    limiter = AdaptiveRateLimiter(limit, clock=fake, sleep=fake.sleep)
    refuse_hard(limiter)  # refused at 40
    assert limiter.current_qps == 20.0
    fake.now = 1.0
    limiter.on_success()
    assert limiter.current_qps == 20.0  # settling: kept for settle_s
    fake.now = 2.5
    limiter.on_success()  # settled at 2.0: good = 20, climbing to min(30, 36) at 4/s
    assert limiter.stats.good_qps == 20.0
    assert limiter.current_qps == pytest.approx(22.0)
    refuse_hard(limiter)  # a limit at 22: straight back to the good rate
    assert limiter.current_qps == 20.0
    assert limiter.stats.refused_qps == pytest.approx(22.0)
    # 22 and 20 are less than 10 % of 22 apart: hold 20 (2 settle_s = 4 s here), then probe.
    for t in (3.0, 5.0, 6.5):
        fake.now = t
        limiter.on_success()
        assert limiter.current_qps == 20.0
    fake.now = 7.0
    limiter.on_success()
    assert limiter.current_qps == pytest.approx(22.0)  # 0.5 s of probing at 4/s
    assert limiter.stats.refused_qps is None  # reached the refused rate: forgotten
    fake.now = 100.0
    limiter.on_success()
    assert limiter.current_qps == 40.0


def test_one_refusal_after_a_clean_run_is_a_dip_several_are_a_limit() -> None:
    fake = FakeTime()
    limit = _classic(qps=40, settle_s=1.0, headroom=0.1)  # recovery 4/s
    limiter = AdaptiveRateLimiter(limit, clock=fake, sleep=fake.sleep)
    refuse_hard(limiter)  # 40 -> 20
    fake.now = 1.0
    limiter.on_success()  # settled: good = 20, climbing to the midpoint, 30
    fake.now = 4.0
    limiter.on_success()
    assert limiter.current_qps == 30.0
    limiter.on_rate_limited(None)  # alone, 4 s after the limit: a dip of 3 % for 2 s
    assert limiter.current_qps == pytest.approx(30 * 0.97)
    assert (limiter.stats.good_qps, limiter.stats.refused_qps) == (20.0, 40.0)
    fake.now = 5.9
    limiter.on_success()
    assert limiter.current_qps == pytest.approx(30 * 0.97)
    fake.now = 6.0
    limiter.on_success()
    assert limiter.current_qps == 30.0  # back where it was, the search untouched
    fake.now = 6.5
    limiter.on_rate_limited(None)  # 2.5 s later: a clean run again, another dip
    assert limiter.stats.limits == 1
    fake.now = 7.0
    limiter.on_rate_limited(None)  # refused again before a clean run (2 s): a limit
    assert limiter.stats.limits == 2
    assert limiter.current_qps == 20.0  # back to the good rate
    assert limiter.stats.refused_qps == pytest.approx(30 * 0.97)


def test_no_recovery_while_paused() -> None:
    fake = FakeTime()
    limiter = AdaptiveRateLimiter(_classic(qps=10, settle_s=0.0), clock=fake, sleep=fake.sleep)
    refuse_hard(limiter, 5.0)  # 10 -> 5; the run pauses until 4.0
    fake.now = 3.0
    limiter.on_success()
    assert limiter.current_qps == 5.0
    fake.now = 5.0
    limiter.on_success()
    # Good = 5 from the end of the pause; one second of climbing at 1/s towards 7.5.
    assert limiter.current_qps == pytest.approx(6.0)


def test_success_at_the_ceiling_stays_there() -> None:
    fake = FakeTime()
    limiter = AdaptiveRateLimiter(_classic(qps=3), clock=fake, sleep=fake.sleep)
    for _ in range(5):
        fake.now += 10
        limiter.on_success()
    assert limiter.current_qps == 3.0


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
