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


# The targets: server answers/s over R, with the limit known and with --qps 2R.
TARGETS = {"known": 0.97, "2x": 0.93}
CLIENT_COLOURS = {
    "pipeline": "tab:blue", "old": "tab:gray", "paced": "tab:orange", "sequential": "tab:olive"
}  # fmt: skip


def plot_matrix(rows: Sequence[dict[str, object]], out: Path) -> None:
    """``bench.throughput``'s medians: one panel per (burst, limit known or 2R), a group of
    bars per R, one bar per client (server answers/s over R), its 429 share written on top,
    the target as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bursts = sorted({int(str(r["burst"])) for r in rows})
    modes = [m for m in TARGETS if any(r["mode"] == m for r in rows)]
    rates = sorted({float(str(r["R"])) for r in rows})
    clients = [c for c in CLIENT_COLOURS if any(r["client"] == c for r in rows)]
    fig, axes = plt.subplots(
        len(bursts), len(modes), figsize=(6 * len(modes), 3.6 * len(bursts)), squeeze=False,
        sharey=True, constrained_layout=True,
    )  # fmt: skip
    width = 0.8 / max(1, len(clients))
    for i, burst in enumerate(bursts):
        for j, mode in enumerate(modes):
            ax = axes[i][j]
            for k, client in enumerate(clients):
                for x, rate in enumerate(rates):
                    found = [
                        r for r in rows
                        if (r["burst"], r["mode"], r["client"]) == (burst, mode, client)
                        and float(str(r["R"])) == rate
                    ]  # fmt: skip
                    if not found:
                        continue
                    ratio = float(str(found[0]["ratio"]))
                    share = 100 * float(str(found[0]["share_429"]))
                    pos = x + (k - (len(clients) - 1) / 2) * width
                    label = client if x == 0 else None
                    ax.bar(pos, ratio, width, color=CLIENT_COLOURS[client], label=label)
                    ax.text(pos, ratio + 0.01, f"{share:.1f}%", ha="center", fontsize=6,
                            rotation=90, va="bottom")  # fmt: skip
            ax.axhline(TARGETS[mode], color="tab:green", linestyle="--", linewidth=1)
            ax.set_xticks(range(len(rates)), [f"R = {r:g}" for r in rates])
            ax.set_ylim(0, 1.25)
            qps = "R (limit known)" if mode == "known" else "2R (limit unknown)"
            ax.set_title(f"burst {burst}, --qps {qps}; 429 share on each bar", fontsize=9)
            if j == 0:
                ax.set_ylabel("server answers/s ÷ R (median)")
    # One legend for every client, wherever each was drawn (sequential: limit known only).
    found = {}
    for ax in axes.flat:
        handles, labels = ax.get_legend_handles_labels()
        found |= dict(zip(labels, handles, strict=True))
    axes[0][-1].legend(found.values(), found.keys(), fontsize=7, loc="upper right", ncols=2)
    fig.savefig(out, dpi=110)
    plt.close(fig)
