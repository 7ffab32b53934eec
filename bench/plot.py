"""The picture of one run at twice the server's limit: request rate, in flight, 429s, over time.

Input is the server's own record of the run: ``arrivals`` (every speech POST) and the
``bench.server`` samples ``(t, in_flight, rate_limited, requests)``, all on the server's clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

BIN_S = 0.5


def rate_series(arrivals: Sequence[float], t0: float, bin_s: float = BIN_S) -> tuple[
    list[float], list[float]
]:
    """Arrivals per second in bins of ``bin_s``: (bin starts, rates), from ``t0``."""
    if not arrivals:
        return [], []
    bins = int((max(arrivals) - t0) // bin_s) + 1
    counts = [0] * bins
    for t in arrivals:
        counts[int((t - t0) // bin_s)] += 1
    return [i * bin_s for i in range(bins)], [c / bin_s for c in counts]


def refusal_times(samples: Sequence[Sequence[float]], t0: float) -> list[float]:
    """When the 429 counter went up, one entry per 429, from the sampled counter."""
    times: list[float] = []
    for (_, _, before, _), (t, _, after, _) in zip(samples, samples[1:], strict=False):
        times += [t - t0] * int(after - before)
    return times


def plot_run(
    arrivals: Sequence[float],
    samples: Sequence[Sequence[float]],
    limit: float,
    configured: float,
    out: Path,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = min(arrivals)
    starts, rates = rate_series(arrivals, t0)
    end = starts[-1] + BIN_S
    active = [s for s in samples if t0 - 0.5 <= s[0] <= t0 + end + 0.5]
    flight_t = [s[0] - t0 for s in active]
    in_flight = [s[1] for s in active]
    refused = refusal_times(active, t0)

    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(11, 6.5), sharex=True, height_ratios=(3, 2), constrained_layout=True
    )
    top.step(starts, rates, where="post", color="tab:blue", label=f"requests/s ({BIN_S:g} s bins)")
    top.axhline(limit, color="tab:green", linestyle="--", label=f"server limit R = {limit:g}/s")
    top.axhline(configured, color="tab:gray", linestyle=":", label=f"--qps {configured:g}")
    if refused:
        top.scatter(
            refused, [limit * 0.05] * len(refused), marker="|", s=120, color="tab:red",
            label=f"HTTP 429 ({len(refused)})",
        )  # fmt: skip
    top.set_ylabel("requests arriving per second")
    top.set_ylim(0, max(max(rates), configured) * 1.15)
    top.legend(loc="upper right", fontsize=8, ncols=2)
    top.set_title(
        f"Pipeline configured at {configured:g} req/s against a server that allows {limit:g} req/s"
    )
    bottom.plot(flight_t, in_flight, color="tab:orange", linewidth=1)
    for t in refused:
        bottom.axvline(t, color="tab:red", alpha=0.25, linewidth=0.8)
    bottom.set_ylabel("requests in flight")
    bottom.set_xlabel("seconds since the first request (server clock)")
    bottom.set_xlim(0, end)
    fig.savefig(out, dpi=110)
    plt.close(fig)
