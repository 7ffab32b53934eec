"""The margin for timing noise (pipeline/spread.py) and the start-up allowance, on a fake clock
with seeded arrival delays (deterministic): a server without burst refuses a request that a
delay shrinking from one request to the next brings in early, whatever the rate."""

from __future__ import annotations

import heapq
import random

import anyio
import anyio.lowlevel
import pytest
from test_limits import FakeTime, make
from test_limits_schedule import BucketServer

from pipeline.errors import ConfigError
from pipeline.limits import AdaptiveRateLimiter, RateLimit
from pipeline.spread import SpreadMargin, SpreadRules

# --- the margin alone --------------------------------------------------------------------


def test_the_margin_widens_by_half_again_up_to_its_cap() -> None:
    margin = SpreadMargin(SpreadRules(first=0.01, cap=0.03))
    shares = []
    while margin.widen(now=0.0, window=1.0):
        shares.append(margin.share)
    assert shares == pytest.approx([0.01, 0.015, 0.0225, 0.03])
    assert margin.widened == 4
    assert not margin.widen(now=0.0, window=1.0)  # at the cap: the rate must answer


def test_the_margin_narrows_after_clean_tokens_and_a_refusal_restarts_the_count() -> None:
    margin = SpreadMargin(SpreadRules(first=0.01, clean_tokens=10, decay=0.5))
    margin.widen(now=0.0, window=1.0)
    margin.widen(now=5.0, window=1.0)  # 0.015
    for _ in range(9):
        margin.issued()
    margin.refused()  # not a clean run after all
    for _ in range(9):
        margin.issued()
    assert margin.share == pytest.approx(0.015)
    margin.issued()
    assert margin.share == pytest.approx(0.0075)
    for _ in range(10):
        margin.issued()
    assert margin.share == 0.0  # under half the first step: gone


def test_a_limit_undoes_the_widening_of_its_own_cluster_only() -> None:
    margin = SpreadMargin()
    margin.widen(now=0.0, window=1.0)  # 0.01, long ago
    margin.widen(now=10.0, window=1.0)  # 0.015: the start of a cluster
    margin.widen(now=10.2, window=1.0)  # 0.0225
    margin.undo(now=10.4, window=1.0)
    assert margin.share == pytest.approx(0.01)


def test_no_cap_means_no_margin() -> None:
    limiter, _ = make(RateLimit(qps=20, spread_cap=0.0))
    limiter.on_rate_limited(None)
    assert limiter.stats.spread == 0.0
    assert limiter.stats.noise_steps == 1
    with pytest.raises(ConfigError, match="spread_cap"):
        RateLimit(spread_cap=0.5)


# --- start-up ------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(("burst", "second"), [(1, 0.1 + 0.05), (2, 0.0)])
async def test_without_burst_the_second_token_waits_the_start_up_allowance(
    burst: int, second: float
) -> None:
    limiter, fake = make(RateLimit(qps=10, burst=burst, margin=0.0, startup_s=0.05))
    times = []
    for _ in range(4):
        await limiter.acquire()
        times.append(fake.now)
    assert times[1] == pytest.approx(second)
    # Once per run: after it the schedule keeps its interval.
    assert times[3] - times[2] == pytest.approx(0.1)


# --- against a server without burst, with arrival delays -------------------------------------


class DelayedServer:
    """A token bucket that sees each request ``delay()`` after it was sent, in arrival order;
    answers reach the limiter at the arrival (a refusal costs no time)."""

    def __init__(self, clock: FakeTime, bucket: BucketServer, seed: int, spread_s: float) -> None:
        self.clock, self.bucket = clock, bucket
        self.random = random.Random(seed)
        self.spread_s = spread_s
        self.pending: list[tuple[float, int]] = []
        self.limiter: AdaptiveRateLimiter | None = None

    def send(self, ticket: int) -> None:
        delay = 0.001 + self.random.expovariate(1 / self.spread_s)
        heapq.heappush(self.pending, (self.clock.now + delay, ticket))

    def deliver(self, until: float) -> None:
        assert self.limiter is not None
        while self.pending and self.pending[0][0] <= until:
            arrival, ticket = heapq.heappop(self.pending)
            self.clock.now = max(self.clock.now, arrival)
            if self.bucket.take(arrival):
                self.limiter.on_success()
            else:
                self.limiter.on_rate_limited(1.0, ticket=ticket)

    async def sleep(self, seconds: float) -> None:
        target = self.clock.now + seconds
        self.deliver(target)
        self.clock.now = max(self.clock.now, target)
        await anyio.lowlevel.checkpoint()


async def _saturated_run(limit: RateLimit, rate: float, seconds: float) -> BucketServer:
    """One worker that always has a request ready, against a burst-1 server at ``rate`` whose
    arrivals are delayed by 1 ms plus an exponential 0.3 ms on average (seed 7)."""
    clock = FakeTime()
    bucket = BucketServer(rate, burst=1)
    server = DelayedServer(clock, bucket, seed=7, spread_s=0.0003)
    limiter = AdaptiveRateLimiter(limit, clock=clock, sleep=server.sleep)
    server.limiter = limiter
    while clock.now < seconds:
        server.send(await limiter.acquire())
    server.deliver(float("inf"))
    return bucket


@pytest.mark.anyio
async def test_noise_widens_the_margin_instead_of_cutting_the_rate() -> None:
    learnt = await _saturated_run(RateLimit(qps=50), 50, 60.0)
    dips = await _saturated_run(RateLimit(qps=50, spread_cap=0.0), 50, 60.0)
    # The same delays: with a margin the rate stays where the noise allows (0.92 of R here,
    # a margin of a few percent) and the refusals rare; with dips each refusal costs 3 %, two
    # close together a limit (0.90 of R).
    assert learnt.admitted > 1.015 * dips.admitted
    assert learnt.admitted / 60.0 >= 0.9 * 50
    assert learnt.refused / (learnt.admitted + learnt.refused) < 0.01


@pytest.mark.anyio
async def test_a_rate_over_the_limit_is_still_a_limit() -> None:
    # --qps 2R: refusals dense enough to be a limit, not noise; the margin does not hide it.
    bucket = await _saturated_run(RateLimit(qps=40), 20, 30.0)
    assert 0.85 * 20 * 30 <= bucket.admitted <= 20 * 30 + 1
    assert bucket.refused / (bucket.admitted + bucket.refused) < 0.05
