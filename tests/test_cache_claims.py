"""The cache between processes: per-key claims, commits that survive a kill, batched syncs,
and the leftovers of dead runs."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio
import pytest

from pipeline import cachefs
from pipeline.cache import ChunkCache
from pipeline.claims import CLAIMS_FILE
from pipeline.errors import StorageError
from pipeline.locks import lock_file, unlock_and_remove

REPO = Path(__file__).resolve().parent.parent
HOST = "https://api.coze.cn"


def _keys(count: int) -> list[str]:
    return [ChunkCache.key({"input": f"line {n}", "voice_id": "v"}, HOST) for n in range(count)]


def _python(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


# A "run" that buys every key it does not find, the way the runner must: claim, look again,
# buy, commit, release. Each purchase is appended to a shared ledger (O_APPEND: whole lines).
# Two workers per run; the two runs go through the keys in opposite orders, so they meet.
_BUYER = """
import json, os, sys
import anyio
from pathlib import Path
from pipeline.cache import ChunkCache

cache_dir, ledger, keys = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
cache = ChunkCache(cache_dir)
found = 0

async def buy(key):
    global found
    async with cache.claim(key):
        if await anyio.to_thread.run_sync(cache.find, key) is not None:
            found += 1
            return
        fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, f"{os.getpid()} {key}\\n".encode())
        os.close(fd)
        await anyio.sleep(0.01)  # the answer takes a while to arrive
        await anyio.to_thread.run_sync(cache.put, key, key.encode() * 100, "wav")

async def worker(mine):
    for key in mine:
        await buy(key)

async def main():
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker, keys[0::2])
        tg.start_soon(worker, keys[1::2])

print("ready", flush=True)
sys.stdin.readline()
anyio.run(main)
cache.close()
print(json.dumps({"writes": cache.stats.writes, "found": found}))
"""


def test_two_processes_sharing_a_cache_never_buy_one_key_twice(tmp_path: Path) -> None:
    keys = _keys(40)
    ledger = tmp_path / "ledger"
    runs = [
        _python(_BUYER, str(tmp_path / "cache"), str(ledger), *order)
        for order in (keys, keys[::-1])
    ]
    for run in runs:  # both begin together, after their imports
        assert run.stdout is not None and run.stdout.readline() == "ready\n"
    for run in runs:
        assert run.stdin is not None
        run.stdin.write("go\n")
        run.stdin.flush()
    outputs = [run.communicate(timeout=60) for run in runs]
    for run, (_, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err
    bought = [line.split()[1] for line in ledger.read_text().splitlines()]
    assert sorted(bought) == sorted(keys), "a key was bought twice, or not at all"
    results = [json.loads(out) for out, _ in outputs]
    assert sum(r["writes"] for r in results) == len(keys)
    assert min(r["writes"] for r in results) > 0, "both runs should have bought some"
    assert sum(r["found"] for r in results) == len(keys)  # what one bought, the other reused
    cache = ChunkCache(tmp_path / "cache")
    for key in keys:
        found = cache.get(key)
        assert found is not None and found.read_bytes() == key.encode() * 100


_HOLD_CLAIM = """
import sys, time
from pathlib import Path
from pipeline.cache import ChunkCache
with ChunkCache(Path(sys.argv[1])).claim(sys.argv[2]):
    print("claimed", flush=True)
    time.sleep(60)
"""


def test_a_claim_is_released_when_its_holder_is_killed(tmp_path: Path) -> None:
    (key,) = _keys(1)
    holder = _python(_HOLD_CLAIM, str(tmp_path), key)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "claimed\n"
        claim = ChunkCache(tmp_path).claim(key)
        assert not claim.try_acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        assert claim.try_acquire()
        claim.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)
        holder.communicate()
    assert sorted(p.name for p in tmp_path.iterdir()) == [CLAIMS_FILE]  # no file per key


@pytest.mark.anyio
async def test_waiting_for_a_claim_does_not_block_the_event_loop(tmp_path: Path) -> None:
    cache = ChunkCache(tmp_path)
    (key,) = _keys(1)
    other = cache.claim(key)
    assert other.try_acquire()  # another holder in this process: the claim table separates
    ticks = 0
    got_it_at: list[float] = []

    async def ticker() -> None:
        nonlocal ticks
        while not got_it_at:
            ticks += 1
            await anyio.sleep(0.005)

    async def waiter() -> None:
        async with cache.claim(key) as claim:
            assert claim.held
            got_it_at.append(time.monotonic())

    released_at = time.monotonic() + 0.3
    threading.Timer(0.3, other.release).start()
    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        tg.start_soon(waiter)
    assert got_it_at[0] >= released_at - 0.01
    assert got_it_at[0] - released_at < 0.2  # polling catches the release quickly
    # The loop kept running while the waiter waited: a blocked loop ticks once or twice in
    # those 0.3 s, a free one up to 60 times (20 or fewer on a busy machine).
    assert ticks >= 5


def test_a_claim_held_too_long_is_given_up_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = ChunkCache(tmp_path)
    (key,) = _keys(1)
    stuck = cache.claim(key)
    assert stuck.try_acquire()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING), cache.claim(key, timeout_s=0.1) as claim:
        assert not claim.held
    assert 0.1 <= time.monotonic() - started < 1.0
    assert any("going on without it" in r.getMessage() for r in caplog.records)
    stuck.release()


def test_a_claims_file_that_is_a_link_is_moved_aside_not_followed(tmp_path: Path) -> None:
    cache = ChunkCache(tmp_path / "cache")
    (key,) = _keys(1)
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / CLAIMS_FILE).symlink_to(victim)
    with cache.claim(key) as claim:
        assert claim.held
        assert not claim.path.is_symlink() and claim.path.is_file()
    assert victim.read_text() == "precious"
    assert cache.stats.corrupt == 1


_TRY_CLAIM = """
import sys
from pathlib import Path
from pipeline.cache import ChunkCache
print(ChunkCache(Path(sys.argv[1])).claim(sys.argv[2]).try_acquire())
"""


def _another_process_gets(cache_dir: Path, key: str) -> bool:
    out, err = _python(_TRY_CLAIM, str(cache_dir), key).communicate(timeout=60)
    assert out in ("True\n", "False\n"), err
    return out == "True\n"


def test_claims_of_keys_on_one_slot_are_counted_not_dropped(tmp_path: Path) -> None:
    # Keys whose first 15 hex digits agree share a locked byte: releasing one must not
    # unlock the other, which another process could then take.
    first, second, third = "a" * 64, "a" * 15 + "b" * 49, "a" * 15 + "c" * 49
    cache = ChunkCache(tmp_path)
    one, two = cache.claim(first), cache.claim(second)
    assert one.try_acquire() and two.try_acquire()
    assert not ChunkCache(tmp_path).claim(first).try_acquire()  # this process: the table
    one.release()
    assert not _another_process_gets(tmp_path, third)
    two.release()
    assert _another_process_gets(tmp_path, third)


def test_claims_in_a_cache_that_cannot_be_written_are_a_storage_error(
    tmp_path: Path,
) -> None:
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(StorageError, match="a-file"):
        ChunkCache(tmp_path / "a-file" / "cache").claim(_keys(1)[0])


def test_a_lock_file_deleted_by_its_holder_is_not_trusted(tmp_path: Path) -> None:
    # A waiter that opened the file before the holder deleted it must not believe it holds
    # the lock: it locks whatever file now has the name (staging folders' locks).
    path = tmp_path / "staging.lock"
    first = lock_file(path)
    assert first is not None
    fd = os.open(path, os.O_RDWR)  # a waiter's open of the same (soon deleted) file
    unlock_and_remove(first, path)
    second = lock_file(path)
    assert second is not None
    assert lock_file(path) is None
    unlock_and_remove(second, path)
    os.close(fd)


# --- commits and syncs ------------------------------------------------------------------


_PUT_AND_DIE = """
import os, signal, sys
from pathlib import Path
from pipeline.cache import ChunkCache
cache = ChunkCache(Path(sys.argv[1]), sync_interval_s=3600, sync_every=10**6)
for key in sys.argv[2:]:
    cache.put(key, key.encode() * 500, "pcm")
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_committed_entries_survive_a_killed_process_without_any_sync(tmp_path: Path) -> None:
    keys = _keys(30)
    run = _python(_PUT_AND_DIE, str(tmp_path), *keys)
    run.communicate(timeout=60)
    assert run.returncode == -signal.SIGKILL
    cache = ChunkCache(tmp_path)
    for key in keys:
        found = cache.get(key)
        assert found is not None and found.read_bytes() == key.encode() * 500
    # The dead process's staging folder is gone: the first use cleaned it.
    assert list((tmp_path / cachefs.STAGING).iterdir()) == []


def test_syncs_are_batched_not_one_per_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsyncs: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd))[1])
    cache = ChunkCache(tmp_path, sync_interval_s=3600, sync_every=8)
    for key in _keys(20):
        cache.put(key, b"x" * 1000, "pcm")
    assert cache.syncs == 2  # after the 8th and the 16th entry
    cache.close()  # the last 4
    assert cache.syncs == 3
    if cachefs._libc_syncfs() is not None:
        assert fsyncs == []  # one syncfs per batch, no fsync per file


def test_a_second_old_batch_is_synced_at_the_next_commit(tmp_path: Path) -> None:
    cache = ChunkCache(tmp_path, sync_interval_s=0.05, sync_every=10**6)
    first, second = _keys(2)
    cache.put(first, b"a", "pcm")
    time.sleep(0.06)
    cache.put(second, b"b", "pcm")
    assert cache.syncs >= 1
    cache.close()


def test_without_syncfs_each_entry_of_a_batch_is_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cachefs, "_syncfs", lambda root: False)
    synced: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(
        os,
        "fsync",
        lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd))[1],
    )
    cache = ChunkCache(tmp_path, sync_interval_s=3600, sync_every=10**6)
    stored = [cache.put(key, b"x", "pcm") for key in _keys(3)]
    assert synced == []
    cache.flush()
    for audio in stored:
        assert str(audio) in synced and str(audio.parent) in synced


def test_a_failed_sync_is_a_storage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(root: Path) -> bool:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(cachefs, "_syncfs", broken)
    cache = ChunkCache(tmp_path, sync_every=1)
    with pytest.raises(StorageError, match="cannot make the cache durable in .*Input/output"):
        cache.put(_keys(1)[0], b"x", "pcm")


# --- leftovers ----------------------------------------------------------------------------


def test_leftovers_of_dead_runs_are_cleaned_and_a_live_run_is_left_alone(
    tmp_path: Path,
) -> None:
    live = ChunkCache(tmp_path)
    first, second = _keys(2)
    live.put(first, b"live", "pcm")
    live_staging = sorted((tmp_path / cachefs.STAGING).iterdir())
    # A dead run's staging (its lock free), a stale claim, older versions' temp folders.
    dead = tmp_path / cachefs.STAGING / "999999-deadbeef"
    (dead / f"{second}.0").mkdir(parents=True)
    (dead / f"{second}.0" / "chunk.pcm").write_bytes(b"half")
    (tmp_path / cachefs.STAGING / "999999-deadbeef.lock").write_text("")
    (tmp_path / cachefs.CLAIMS).mkdir()
    (tmp_path / cachefs.CLAIMS / second).write_text("")
    shard = tmp_path / second[:2]
    shard.mkdir(exist_ok=True)
    (shard / f".tmp-{second[:16]}-abc").mkdir()
    (shard / f".trash-{second[:16]}-1-2").mkdir()

    ChunkCache(tmp_path).get(second)  # the next run's first look cleans up

    assert sorted((tmp_path / cachefs.STAGING).iterdir()) == live_staging
    assert list((tmp_path / cachefs.CLAIMS).iterdir()) == []
    assert [p.name for p in shard.iterdir() if p.name.startswith(".")] == []
    assert live.put(second, b"still works", "pcm").read_bytes() == b"still works"


def test_a_finished_run_leaves_nothing_behind_but_entries(tmp_path: Path) -> None:
    with ChunkCache(tmp_path) as cache:
        for key in _keys(10):
            with cache.claim(key):
                cache.put(key, b"x" * 100, "pcm")
    leftovers = [
        p.relative_to(tmp_path).as_posix()
        for p in tmp_path.rglob("*")
        if not (len(p.relative_to(tmp_path).parts[0]) == 2)
    ]
    assert sorted(leftovers) == [CLAIMS_FILE, cachefs.STAGING]
