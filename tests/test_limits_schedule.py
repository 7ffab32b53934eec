"""The limiter's schedule and what it learns, on a fake clock (deterministic): lateness made up,
a known limit paced a margin under, the server's burst tolerance learnt, one noise refusal
told from a limit, the limit found by repeated refusals, the search and recovery after it."""

from __future__ import annotations

import pytest
from test_limits import FakeTime, _classic, make, refuse_hard

from pipeline.limits import AdaptiveRateLimiter, RateLimit

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
    limit = RateLimit(qps=50, margin=0.02)
    limiter = AdaptiveRateLimiter(limit, clock=fake, sleep=fake.sleep)
    times = await _take(limiter, fake, 101)
    # The second token also waits out the start-up allowance (burst 1), once.
    assert times[-1] == pytest.approx(100 / (50 * 0.98) + limit.startup_s)
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
    # A margin of 1 % of an interval, narrowed after 200 clean tokens: under 1 % of a
    # minute's tokens.
    assert 0.99 * clean <= noisy < clean
    limiter, fake = make(RateLimit(qps=20))
    limiter.on_rate_limited(1.0)
    assert limiter.current_qps == pytest.approx(20 * 0.98)
    assert limiter.stats.spread == pytest.approx(0.01)
    # Without a margin to learn, the same refusal is a dip of 3 % for a few seconds.
    limiter, fake = make(RateLimit(qps=20, spread_cap=0.0))
    limiter.on_rate_limited(1.0)
    assert limiter.current_qps == pytest.approx(20 * 0.98 * 0.97)


@pytest.mark.anyio
async def test_repeated_refusals_find_the_limit() -> None:
    # --qps 2R against a burst-1 server at R: dense refusals cut the rate, the search then
    # settles just under R and probes it rarely.
    limiter, fake = make(RateLimit(qps=40))
    server = BucketServer(20, burst=1)
    await _serve(limiter, fake, server, 60.0)
    # The rate paced: the search's rate with the margin learnt for noise.
    paced = limiter.current_qps / (1 + limiter.stats.spread)
    assert 0.93 * 20 <= paced <= 20
    assert server.admitted >= 0.9 * 20 * 60
    assert server.refused / (server.admitted + server.refused) < 0.03
    assert limiter.stats.limits >= 1


@pytest.mark.anyio
async def test_a_far_too_high_qps_comes_down_in_one_limit() -> None:
    # Over its limit a server still admits about its limit: the first limit goes down to
    # what was admitted (at most halving), not 20 % a step.
    limiter, fake = make(RateLimit(qps=40))
    server = BucketServer(20, burst=1)
    while limiter.stats.limits == 0:
        ticket = await limiter.acquire()
        if server.take(fake.now):
            limiter.on_success()
        else:
            limiter.on_rate_limited(1.0, ticket=ticket)
    assert limiter.current_qps == pytest.approx(40 * 0.98 * 0.5)
    assert server.refused == limiter.limit.limit_refusals


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
