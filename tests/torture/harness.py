"""Shared machinery of the torture tests: job generation, runs, and output checks.

A job is generated from a seed: chapters of unique short lines (Latin and CJK mixed), one
chunk per line, so that a job of N chunks costs N distinct requests and every chunk's body
is its own key in the server's ``by_input``.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import helpers
import soundfile

from pipeline.cache import ChunkCache
from pipeline.coze.client import ClientConfig, SpeechClient
from pipeline.limits import RateLimit
from pipeline.localserver import body_key
from pipeline.manifest import load_job
from pipeline.planning import Plan, plan_job
from pipeline.progress import Progress
from pipeline.report import RunReport
from pipeline.runner import RetryPolicy, RunConfig, Runner

REPO = Path(__file__).resolve().parents[2]
TOKEN_VARIABLE = "COZE_API_TOKEN"
SAMPLE_RATE = 8000  # the smallest: keeps a 2,000-chunk job's audio to a few tens of MB
LINES_PER_CHAPTER = 100

_WORDS = (
    "amber", "birch", "cobalt", "dune", "ember", "fjord", "garnet", "heath", "indigo",
    "juniper", "kelp", "lichen", "marsh", "nectar", "onyx", "pine", "quartz", "rill",
)
_HANZI = "山水风云花月星河天地日夜春秋江湖"


@dataclass(frozen=True)
class Size:
    """How big one variant of a torture test is: the CI size or the full one."""

    name: str
    chunks: int
    seeds: tuple[int, ...]
    kills: int


CI = Size("ci", chunks=150, seeds=(1, 2), kills=5)
FULL = Size("full", chunks=2000, seeds=(11, 12, 13, 14), kills=24)


def line_text(rng: random.Random, serial: int) -> str:
    """A short line, unique by ``serial``; a third are Chinese, so characters != bytes."""
    if rng.random() < 0.33:
        body = "".join(rng.choice(_HANZI) for _ in range(rng.randint(4, 10)))
        return f"第{serial}句{body}。"
    words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 5)))
    return f"Line {serial}: {words}."


def write_job(
    folder: Path,
    chunks: int,
    seed: int = 0,
    *,
    name: str = "job.yaml",
    per_chapter: int = LINES_PER_CHAPTER,
) -> Path:
    """A YAML manifest of ``chunks`` lines in chapters of ``per_chapter``; returns its path."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = [
        "defaults:",
        "  voice_id: local-tone-1",
        "  response_format: wav",
        f"  sample_rate: {SAMPLE_RATE}",
        "  pause_ms: 20",
        "chapters:",
    ]
    for first in range(0, chunks, per_chapter):
        out.append(f"  - id: ch{first // per_chapter + 1:03d}")
        out.append("    lines:")
        for serial in range(first, min(first + per_chapter, chunks)):
            out.append(f"      - text: {_yaml_quote(line_text(rng, serial))}")
    path = folder / name
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


def _yaml_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def load_plan(job: Path) -> Plan:
    return plan_job(load_job(job))


def input_characters(plan: Plan) -> dict[str, int]:
    """``body_key`` of every chunk's request -> its characters (what the server bills)."""
    return {body_key(c.request().body()): c.characters for c in plan.chunks()}


def chapter_files(out_dir: Path) -> dict[str, bytes]:
    """Every chapter file under a final name in ``out_dir``: name -> bytes."""
    return {
        p.name: p.read_bytes()
        for p in sorted(out_dir.iterdir())
        if p.is_file() and p.suffix == ".wav" and not p.name.startswith(".")
    }


def digests(files: Mapping[str, bytes]) -> dict[str, str]:
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def check_wav_whole(path: Path) -> None:
    """Raise unless ``path`` is a complete wav: the header's length matches the file's."""
    info = soundfile.info(str(path))
    frames = len(soundfile.read(str(path), dtype="int16")[0])
    if info.frames != frames or frames == 0:
        raise AssertionError(f"{path.name}: header says {info.frames} frames, read {frames}")


def check_cache_entries(cache_dir: Path) -> int:
    """Verify every committed cache entry; return how many there are."""
    cache = ChunkCache(cache_dir)
    count = 0
    for entry in cache_dir.glob("??/*"):
        if entry.name.startswith("."):
            continue  # a temporary or trash directory: never read as an entry
        assert cache.get(entry.name) is not None, f"cache entry {entry.name} does not verify"
        count += 1
    assert cache.stats.corrupt == 0
    return count


def cli_env(token: str, **extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess (see ``helpers.cli_env``), with ``token``."""
    return helpers.cli_env(**{TOKEN_VARIABLE: token, **extra})


def run_args(job: Path, out: Path, base_url: str, *more: str) -> list[str]:
    """``tts-pipeline run`` against ``base_url``; ``more`` options win over these."""
    return [
        sys.executable, "-m", "pipeline", "run", str(job), "--out", str(out),
        "--base-url", base_url, "--progress", "none", "--qps", "1000", *more,
    ]


def run_cli(args: Sequence[str], env: Mapping[str, str], timeout: float = 600) -> \
        subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), env=dict(env), cwd=REPO, capture_output=True, text=True, timeout=timeout,
        check=False,
    )


def billed_beyond(by_input: Counter[str], characters: Mapping[str, int]) -> int:
    """Characters billed more than once: what a resumed job paid twice."""
    return sum(characters[k] * (n - 1) for k, n in by_input.items() if n > 1)


# Fast enough for CI: a Retry-After pauses the whole run for at most this, and a burst of
# rate-limit answers cannot slow the run below min_qps. The retry logic is the same.
FAST_RATE = RateLimit(qps=500, burst=20, min_qps=20, max_pause_s=0.25)
FAST_RETRY = RetryPolicy(retries=30, initial_s=0.01, max_s=0.2)


async def run_in_process(
    plan: Plan,
    out_dir: Path,
    base_url: str,
    *,
    token: str = "torture-token",
    read_timeout: float = 5.0,
    concurrency: int = 8,
    progress: Progress | None = None,
) -> RunReport:
    """One run of ``plan`` as ``tts-pipeline run`` does it, with fast retries."""
    client_config = ClientConfig(base_url=base_url, token=token, read_timeout=read_timeout)
    config = RunConfig(
        out_dir=out_dir,
        cache_dir=out_dir / ".cache",
        host_id=base_url,
        rate=FAST_RATE,
        concurrency=concurrency,
        retry=FAST_RETRY,
    )
    async with SpeechClient(client_config) as client:
        return await Runner(plan, config, client, progress).run()
