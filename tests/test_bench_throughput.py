"""bench.throughput's summary line and bench.plot's matrix picture (no server, no timing)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.plot import plot_matrix
from bench.server import lag_summary
from bench.throughput import load_line


def _row(burst: int, rate: float, mode: str, client: str, ratio: float) -> dict[str, object]:
    return {"burst": burst, "R": rate, "mode": mode, "client": client, "ratio": ratio,
            "share_429": 0.02, "server_lag_p90_ms": 3.0, "load": 6.0}  # fmt: skip


def test_plot_matrix_draws_every_burst_mode_and_client(tmp_path: Path) -> None:
    # matplotlib is a bench extra (`make bench` installs it), not a dev one: CI's `make
    # test` has no plotting library, a bench venv runs this.
    pytest.importorskip("matplotlib", reason="the bench extras are not installed")
    rows = [
        _row(b, r, m, c, 0.9)
        for b in (1, 2) for r in (5.0, 20.0) for m in ("known", "2x") for c in ("pipeline", "old")
    ]  # fmt: skip
    out = tmp_path / "matrix.png"
    plot_matrix(rows, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_load_line_gives_the_load_and_the_server_lag() -> None:
    rows = [_row(1, 5.0, "known", "pipeline", 0.9) | {"load": load} for load in (2.0, 8.0, 9.0)]
    rows[0]["server_lag_p90_ms"] = math.nan  # a server that did not report its lag
    line = load_line(rows)
    assert "median 8.0, 2.0 to 9.0" in line
    assert "server loop lag p90: median 3.00 ms" in line


def test_lag_summary_in_milliseconds() -> None:
    summary = lag_summary([0.001 * i for i in range(101)])
    assert summary == {"p50": 50.0, "p90": 90.0, "p99": 99.0, "max": 100.0}
    assert lag_summary([0.5]) is None
