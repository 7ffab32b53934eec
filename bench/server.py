"""The benchmarks' server process: the local Coze-compatible server plus an in-flight sampler.

    python -m bench.server [--qps R] [--latency-ms 300 --latency-per-byte-ms 0.5 --jitter 0.3]

It is ``tts-pipeline serve-local`` with the same knobs (``ServerConfig``), in its own process
so that the client's CPU time is measured alone, with one addition the plot needs: every
``SAMPLE_S`` it records (time, requests in flight, 429s so far, requests so far) from
``LocalServer.stats``, on the server's own clock (the clock of ``stats.arrivals``). The samples
are served on a second port (``GET /timeline``, ``POST /timeline/reset``), so the speech port
is exactly the stock server. Once bound it prints one JSON line:
``{"base_url": ..., "timeline_url": ...}``.

The sampler's own lateness is the server loop's lag: how long a request that has arrived
waits before its handler runs and the rate check stamps it. ``/timeline`` reports it
(``lag_ms``: median, 90th, 99th percentile, max since the last reset). Python hands the GIL
from a rendering thread to the event loop only every ``sys.getswitchinterval()`` (5 ms by
default), so with renders running every arrival stamp is late by a share of that, more for
some requests than for others: noise that a gateway's rate check, which runs in front of the
service, does not add. ``--switch-interval-ms`` (default 0.5) shortens the hand-over in this
process; the token bucket itself is unchanged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time

from aiohttp import web

from pipeline.localserver import LocalServer, ServerConfig, running_server

SAMPLE_S = 0.02
SWITCH_INTERVAL_MS = 0.5
# 20 minutes of samples at 50 Hz: a bound, so a forgotten server cannot grow without end.
MAX_SAMPLES = 60_000


class Sampler:
    """(t, in_flight, rate_limited, requests) every SAMPLE_S, from the server's stats."""

    def __init__(self, server: LocalServer) -> None:
        self._server = server
        self.samples: list[tuple[float, int, int, int]] = []
        self.lags: list[float] = []  # seconds each sample woke late: the loop's lag

    async def run(self) -> None:
        while True:
            stats = self._server.stats
            now = time.monotonic()
            if len(self.samples) < MAX_SAMPLES:
                self.samples.append((now, stats.in_flight, stats.rate_limited, stats.requests))
            await asyncio.sleep(SAMPLE_S)
            if len(self.lags) < MAX_SAMPLES:
                self.lags.append(max(0.0, time.monotonic() - now - SAMPLE_S))

    async def get(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"samples": self.samples, "lag_ms": lag_summary(self.lags)})

    async def reset(self, request: web.Request) -> web.StreamResponse:
        self.samples = []
        self.lags = []
        return web.json_response({"samples": []})


def lag_summary(lags: list[float]) -> dict[str, float] | None:
    """Median, 90th and 99th percentile and max of the loop's lag, in ms."""
    if len(lags) < 2:
        return None
    cuts = statistics.quantiles(lags, n=100, method="inclusive")
    return {
        "p50": round(1000 * statistics.median(lags), 3),
        "p90": round(1000 * cuts[89], 3),
        "p99": round(1000 * cuts[98], 3),
        "max": round(1000 * max(lags), 3),
    }


async def serve(config: ServerConfig) -> None:
    async with running_server(config) as server:
        sampler = Sampler(server)
        app = web.Application()
        app.router.add_get("/timeline", sampler.get)
        app.router.add_post("/timeline/reset", sampler.reset)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        ready = {"base_url": server.base_url, "timeline_url": f"http://127.0.0.1:{port}"}
        print(json.dumps(ready), flush=True)
        task = asyncio.create_task(sampler.run())
        try:
            await asyncio.Event().wait()  # until SIGTERM/SIGINT ends the process
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="tone")
    parser.add_argument("--qps", type=float, default=None)
    parser.add_argument("--burst", type=int, default=1)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--latency-per-byte-ms", type=float, default=0.0)
    parser.add_argument("--jitter", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--switch-interval-ms", type=float, default=SWITCH_INTERVAL_MS,
        help="GIL hand-over interval of this process (module docstring; Python's is 5)",
    )  # fmt: skip
    args = parser.parse_args()
    sys.setswitchinterval(args.switch_interval_ms / 1000)
    config = ServerConfig(
        engine=args.engine,
        qps=args.qps,
        burst=args.burst,
        latency_ms=args.latency_ms,
        latency_per_byte_ms=args.latency_per_byte_ms,
        jitter=args.jitter,
        seed=args.seed,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config))


if __name__ == "__main__":
    main()
