"""The benchmarks' server process: the local Coze-compatible server plus an in-flight sampler.

    python -m bench.server [--qps R] [--latency-ms 300 --latency-per-byte-ms 0.5 --jitter 0.3]

It is ``tts-pipeline serve-local`` with the same knobs (``ServerConfig``), in its own process
so that the client's CPU time is measured alone, with one addition the plot needs: every
``SAMPLE_S`` it records (time, requests in flight, 429s so far, requests so far) from
``LocalServer.stats``, on the server's own clock (the clock of ``stats.arrivals``). The samples
are served on a second port (``GET /timeline``, ``POST /timeline/reset``), so the speech port
is exactly the stock server. Once bound it prints one JSON line:
``{"base_url": ..., "timeline_url": ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time

from aiohttp import web

from pipeline.localserver import LocalServer, ServerConfig, running_server

SAMPLE_S = 0.02
# 20 minutes of samples at 50 Hz: a bound, so a forgotten server cannot grow without end.
MAX_SAMPLES = 60_000


class Sampler:
    """(t, in_flight, rate_limited, requests) every SAMPLE_S, from the server's stats."""

    def __init__(self, server: LocalServer) -> None:
        self._server = server
        self.samples: list[tuple[float, int, int, int]] = []

    async def run(self) -> None:
        while True:
            stats = self._server.stats
            if len(self.samples) < MAX_SAMPLES:
                self.samples.append(
                    (time.monotonic(), stats.in_flight, stats.rate_limited, stats.requests)
                )
            await asyncio.sleep(SAMPLE_S)

    async def get(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"samples": self.samples})

    async def reset(self, request: web.Request) -> web.StreamResponse:
        self.samples = []
        return web.json_response({"samples": []})


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
    args = parser.parse_args()
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
