"""Two runs sharing one ``--cache-dir`` at once pay for each chunk once (issue 12), and
successful runs leave no temp files or ``.tmp-*`` cache folders behind.

End to end: two ``python -m pipeline run`` subprocesses, one tone server that counts the
requests. The per-key claims of ``pipeline.cache`` make the second run wait for the first
one's chunk instead of buying it again, once the runner takes a claim before each request.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from helpers import chunk_keys, cli_command, cli_env, make_plan, read_report, texts, write_job

from pipeline.localserver import LocalServer

MakeServer = Callable[..., LocalServer]
TOKEN = "pat_SHAREDcache0123456789"
# The names a writer in the middle of its work uses: fileio's temp files, the cache's staging.
_LEFTOVER = re.compile(r"(^\..+\.[0-9a-f]{12}\.tmp$)|(^\.tmp-)|(^\.say-)")


def leftovers(*folders: Path) -> list[Path]:
    found = []
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            for name in [*dirs, *files]:
                if _LEFTOVER.search(name):
                    found.append(Path(root) / name)
    return found


def _two_runs(job: Path, tmp_path: Path, base_url: str) -> list[subprocess.CompletedProcess[str]]:
    cache = tmp_path / "shared-cache"
    processes = [
        subprocess.Popen(
            cli_command("run", job, "-o", tmp_path / f"out{i}", "--cache-dir", cache,
                        "--base-url", base_url, "--progress", "none", "--concurrency", "2"),
            env=cli_env(COZE_API_TOKEN=TOKEN), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )
        for i in (1, 2)
    ]
    results = []
    for p in processes:
        try:
            out, err = p.communicate(timeout=120)
        finally:
            p.kill()
        results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return results


def test_two_runs_sharing_a_cache_pay_once_per_chunk(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server(latency_ms=150)
    job = write_job(tmp_path, {"a": texts(4, "alpha"), "b": texts(4, "beta")})
    distinct = len(set(chunk_keys(make_plan(job))))
    results = _two_runs(job, tmp_path, server.base_url)
    for result in results:
        assert result.returncode == 0, result.stderr
    assert server.stats.requests == distinct


def test_successful_runs_leave_no_temp_files(make_server: MakeServer, tmp_path: Path) -> None:
    server = make_server()
    job = write_job(tmp_path, {"a": texts(3, "gamma"), "b": texts(2, "delta")})
    results = _two_runs(job, tmp_path, server.base_url)
    for result in results:
        assert result.returncode == 0, result.stderr
        assert TOKEN not in result.stdout + result.stderr
    for out in ("out1", "out2"):
        assert read_report(tmp_path / out)["status"] == "ok"
    assert leftovers(tmp_path / "out1", tmp_path / "out2", tmp_path / "shared-cache") == []
