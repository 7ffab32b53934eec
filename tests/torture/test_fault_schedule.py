"""Issue 7.1: a seeded mix of every fault kind over a whole job changes nothing in the output.

The local server draws a fault for a share of its requests (``fault_rate``) from every kind
it knows: 429 with and without Retry-After, 5xx, HTTP 200 with a JSON error, an HTML page,
short bodies, resets before and during the body, a body that stalls longer than the client's
read timeout, and audio that does not decode. The run must end "ok" with chapter files
byte-identical to a fault-free run, count one retry per fault, and pay for each chunk once.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from pipeline.localserver import FAULT_KINDS, ServerConfig, serve_in_thread

from .conftest import SIZES
from .harness import Size, chapter_files, digests, load_plan, run_in_process, write_job

FAULT_RATE = 0.2
READ_TIMEOUT_S = 0.3
STALL_S = 1.0  # longer than the read timeout: only the timeout can end the attempt


@pytest.mark.parametrize("size", SIZES)
def test_fault_schedule_output_is_identical_to_a_fault_free_run(
    size: Size, tmp_path: Path, reference: Callable[[Size], dict[str, str]]
) -> None:
    expected = reference(size)
    injected: Counter[str] = Counter()
    for seed in size.seeds:
        faults = _faulted_run(tmp_path / f"seed-{seed}", size, seed, expected)
        injected.update(faults)
    print(f"\nfault schedule {size.name}: seeds {list(size.seeds)}, {size.chunks} chunks each, "
          f"faults injected {dict(sorted(injected.items()))}, total {injected.total()}")
    never = set(FAULT_KINDS) - set(injected)
    assert not never, f"fault kinds never drawn: {never}"


def _faulted_run(folder: Path, size: Size, seed: int, expected: dict[str, str]) -> Counter[str]:
    job = write_job(folder, size.chunks)  # the reference's job: job seed 0
    plan = load_plan(job)
    out = folder / "out"
    config = ServerConfig(fault_rate=FAULT_RATE, seed=seed, stall_s=STALL_S)
    with serve_in_thread(config) as server:
        report = anyio.run(
            lambda: run_in_process(plan, out, server.base_url, read_timeout=READ_TIMEOUT_S)
        )
        stats = server.stats
        faults = stats.faults
    assert report.status == "ok", json.dumps(report.to_json()["chapters"], indent=1)
    assert digests(chapter_files(out)) == expected
    # Every fault costs exactly one failed attempt, and every failed attempt is retried.
    assert faults.total() > 0
    assert report.totals.retries == faults.total()
    assert report.totals.requests == plan.chunk_count + faults.total()
    on_disk = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert on_disk["totals"]["retries"] == faults.total()
    # Faults are not billed; an answered chunk is stored and never asked for again.
    assert stats.billed_characters == plan.characters
    assert set(stats.by_input.values()) == {1}
    assert len(stats.by_input) == plan.chunk_count
    return faults
