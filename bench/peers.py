"""What users would otherwise write, with the official SDK (cozepy 0.20), on the same job.

- ``sequential``: cozepy's README usage in a loop: ``Coze(...).audio.speech.create(...)`` then
  ``write_to_file``, one line after the other. An error is caught and counted, not retried
  (the README has no retry; cozepy itself retries nothing).
- ``gather``: the usual hand-written concurrency: ``AsyncCoze``, an ``asyncio.Semaphore``
  around each call, ``asyncio.gather(..., return_exceptions=True)``; no rate limiter, no
  retry: a line answered 429 is a line lost.
- ``paced``: the competent hand-written client, the fair peer: ``aiolimiter.AsyncLimiter(1,
  1 / qps)`` (one request per interval; ``AsyncLimiter(qps, 1)`` would let a whole second's
  worth go at once), tenacity retries with full-jitter exponential waits on rate limits and
  transient errors (as many as the pipeline's ``--retries``), an ``asyncio.Semaphore`` for the
  requests in flight.

Each runs in its own process (``python -m bench.peers MODE ...``) so that its CPU time and
memory are its own, and prints one JSON line: lines delivered, lost (with the codes), seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import TOKEN, VOICE, BenchServer, ChildRun, ServerFigures, run_child

SAMPLE_RATE = 16000


def _code(error: BaseException) -> str:
    return str(getattr(error, "code", None) or type(error).__name__)


def sequential(base_url: str, texts: list[str], out_dir: Path) -> dict[str, Any]:
    """The README's loop, line after line."""
    from cozepy import AudioFormat, Coze, CozeAPIError, SyncHTTPClient, TokenAuth

    lost: Counter[str] = Counter()
    started = time.monotonic()
    # The client is closed at the end (the README leaves that to process exit).
    with SyncHTTPClient() as http:  # type: ignore[no-untyped-call]
        coze = Coze(auth=TokenAuth(token=TOKEN), base_url=base_url, http_client=http)
        for i, text in enumerate(texts):
            try:
                speech = coze.audio.speech.create(
                    input=text, voice_id=VOICE, response_format=AudioFormat.WAV,
                    sample_rate=SAMPLE_RATE,
                )  # fmt: skip
                speech.write_to_file(str(out_dir / f"{i:05d}.wav"))
            except CozeAPIError as e:
                lost[_code(e)] += 1
    return _result(len(texts), lost, time.monotonic() - started)


async def gather(
    base_url: str, texts: list[str], out_dir: Path, concurrency: int
) -> dict[str, Any]:
    """A semaphore around AsyncCoze and asyncio.gather: no limiter, no retry."""
    from cozepy import AsyncCoze, AsyncHTTPClient, AsyncTokenAuth, AudioFormat

    semaphore = asyncio.Semaphore(concurrency)
    started = time.monotonic()
    async with AsyncHTTPClient() as http:  # type: ignore[no-untyped-call]
        coze = AsyncCoze(auth=AsyncTokenAuth(token=TOKEN), base_url=base_url, http_client=http)

        async def one(i: int, text: str) -> None:
            async with semaphore:
                speech = await coze.audio.speech.create(
                    input=text, voice_id=VOICE, response_format=AudioFormat.WAV,
                    sample_rate=SAMPLE_RATE,
                )  # fmt: skip
            speech.write_to_file(str(out_dir / f"{i:05d}.wav"))

        calls = (one(i, t) for i, t in enumerate(texts))
        results = await asyncio.gather(*calls, return_exceptions=True)
    elapsed = time.monotonic() - started
    lost = Counter(_code(r) for r in results if isinstance(r, BaseException))
    return _result(len(texts), lost, elapsed)


def _transient(error: BaseException) -> bool:
    from cozepy import CozeAPIError

    # 4009/4013/4020: rate limits and busy; 5xx: the server's fault; anything else is final.
    code = getattr(error, "code", None)
    return isinstance(error, CozeAPIError) and (code in (4009, 4013, 4020) or (code or 0) >= 500)


async def paced(
    base_url: str, texts: list[str], out_dir: Path, concurrency: int, qps: float
) -> dict[str, Any]:
    """aiolimiter at ``qps`` + tenacity retries + a semaphore, around AsyncCoze."""
    from aiolimiter import AsyncLimiter
    from cozepy import AsyncCoze, AsyncHTTPClient, AsyncTokenAuth, AudioFormat
    from tenacity import (
        AsyncRetrying,
        retry_if_exception,
        stop_after_attempt,
        wait_random_exponential,
    )

    limiter = AsyncLimiter(1, 1 / qps)
    semaphore = asyncio.Semaphore(concurrency)
    retries = Counter[str]()
    started = time.monotonic()
    async with AsyncHTTPClient() as http:  # type: ignore[no-untyped-call]
        coze = AsyncCoze(auth=AsyncTokenAuth(token=TOKEN), base_url=base_url, http_client=http)

        async def one(i: int, text: str) -> None:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(_transient),
                wait=wait_random_exponential(multiplier=0.5, max=8),
                stop=stop_after_attempt(7),
                reraise=True,
            ):
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        retries["retries"] += 1
                    async with semaphore, limiter:
                        speech = await coze.audio.speech.create(
                            input=text, voice_id=VOICE, response_format=AudioFormat.WAV,
                            sample_rate=SAMPLE_RATE,
                        )  # fmt: skip
            speech.write_to_file(str(out_dir / f"{i:05d}.wav"))

        calls = (one(i, t) for i, t in enumerate(texts))
        results = await asyncio.gather(*calls, return_exceptions=True)
    elapsed = time.monotonic() - started
    lost = Counter(_code(r) for r in results if isinstance(r, BaseException))
    return _result(len(texts), lost, elapsed) | dict(retries)


def _result(lines: int, lost: Counter[str], seconds: float) -> dict[str, Any]:
    lost_total = sum(lost.values())
    return {
        "lines": lines,
        "delivered": lines - lost_total,
        "lost": lost_total,
        "lost_by_code": dict(lost),
        "seconds": round(seconds, 3),
    }


def run_peer(
    server: BenchServer,
    mode: str,
    texts: list[str],
    work: Path,
    concurrency: int = 0,
    qps: float = 0.0,
) -> dict[str, Any]:
    """One peer in its own process against a reset server; its figures and the server's."""
    work.mkdir(parents=True, exist_ok=True)
    texts_path = work / f"{mode}-texts.json"
    texts_path.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    out_dir = work / f"{mode}-out"
    out_dir.mkdir(exist_ok=True)
    server.reset()
    argv = [
        sys.executable, "-m", "bench.peers", mode, "--base-url", server.base_url,
        "--texts", str(texts_path), "--out", str(out_dir), "--concurrency", str(concurrency),
        "--qps", f"{qps:g}",
    ]  # fmt: skip
    child: ChildRun = run_child(argv, cwd=work)
    if child.returncode != 0:
        raise RuntimeError(f"peer {mode} exited {child.returncode}: {child.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    result["mode"] = mode
    result["concurrency"] = concurrency or 1
    result["rate"] = round(result["delivered"] / result["seconds"], 3)
    result["wall_s"] = round(child.wall_s, 3)  # the process, start-up included
    result["client_cpu_s"] = round(child.cpu_s, 2)
    result["client_max_rss_mb"] = round(child.max_rss_mb, 1)
    result["server"] = ServerFigures.of(server.stats()).to_json()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("sequential", "gather", "paced"))
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--texts", type=Path, required=True, help="a JSON list of lines")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--qps", type=float, default=0.0, help="paced: requests per second")
    args = parser.parse_args()
    texts = json.loads(args.texts.read_text(encoding="utf-8"))
    if args.mode == "sequential":
        result = sequential(args.base_url, texts, args.out)
    elif args.mode == "paced":
        result = asyncio.run(paced(args.base_url, texts, args.out, args.concurrency, args.qps))
    else:
        result = asyncio.run(gather(args.base_url, texts, args.out, args.concurrency))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
