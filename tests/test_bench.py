"""The benchmark helpers: the peers' loops, the bucket replay, the Markdown table."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.common import markdown_table
from bench.evidence import refused_arrivals
from bench.peers import gather, sequential
from pipeline.localserver import ServerConfig, serve_in_thread

TEXTS = [f"第{i}句。Line number {i} of the benchmark." for i in range(5)]


def test_sequential_sdk_loop_delivers_every_line(tmp_path: Path) -> None:
    with serve_in_thread(ServerConfig(engine="tone")) as server:
        result = sequential(server.base_url, TEXTS, tmp_path)
        assert server.stats.audio_answers == 5
    assert (result["delivered"], result["lost"]) == (5, 0)
    assert len(list(tmp_path.glob("*.wav"))) == 5


def test_naive_gather_loses_the_lines_answered_429(tmp_path: Path) -> None:
    # One request per 10 s, burst 1: of five concurrent requests only the first gets through.
    with serve_in_thread(ServerConfig(engine="tone", qps=0.1)) as server:
        result = asyncio.run(gather(server.base_url, TEXTS, tmp_path, concurrency=5))
    assert (result["delivered"], result["lost"]) == (1, 4)
    assert result["lost_by_code"] == {"4009": 4}


def test_bucket_replay_finds_the_early_arrival() -> None:
    # R = 4: 250 ms apart is fine, 240 ms after the previous one is refused.
    assert refused_arrivals([0.0, 0.25, 0.5, 0.74, 1.0], rate=4) == [3]
    assert refused_arrivals([0.0, 0.25, 0.5, 0.75], rate=4) == []


def test_markdown_table_aligns_numbers_and_formats_them() -> None:
    rows = [("known", 0.98765, 1000), ("2x", 12.34, 5)]
    table = markdown_table(["run", "ratio", "requests"], rows)
    assert table.splitlines() == [
        "| run | ratio | requests |",
        "|---|---:|---:|",
        "| known | 0.988 | 1,000 |",
        "| 2x | 12.3 | 5 |",
    ]
