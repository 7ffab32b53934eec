"""The chunk cache (keys, atomic entries, damage detection) and the output directory lock."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from pipeline.cache import (
    CHECKSUM_NAME,
    KEY_NAME,
    LOCK_NAME,
    CacheStats,
    ChunkCache,
    OutputLock,
    canonical_host,
)
from pipeline.errors import ConfigError
from pipeline.speech import SpeechParams, SpeechRequest

HOST = "https://api.coze.cn"
AUDIO = b"ID3\x04fake mp3 bytes " * 50

FULL_BODY: dict[str, Any] = {
    "input": "你好，世界。Hello!",
    "voice_id": "7426720361733144585",
    "emotion": "happy",
    "emotion_scale": 4.5,
    "response_format": "mp3",
    "speed": 1.2,
    "sample_rate": 24000,
    "loudness_rate": 10,
    "context_texts": ["speak softly"],
}

# Changing one field of FULL_BODY to this value must change the key.
OTHER_VALUE: dict[str, Any] = {
    "input": "你好，世界。Hello?",
    "voice_id": "7426720361733144586",
    "emotion": "sad",
    "emotion_scale": 4.0,
    "response_format": "wav",
    "speed": 1.1,
    "sample_rate": 48000,
    "loudness_rate": 0,
    "context_texts": ["speak loudly"],
}


def entry_files(cache: ChunkCache, key: str) -> tuple[Path, Path]:
    entry = cache.path_for(key)
    (audio,) = [p for p in entry.iterdir() if p.name not in (CHECKSUM_NAME, KEY_NAME)]
    return audio, entry / CHECKSUM_NAME


# --- keys --------------------------------------------------------------------------------


def test_key_is_stable_across_runs_and_versions() -> None:
    # A changed key silently throws away every user's cache: this value must only change
    # together with CACHE_SCHEMA. It is the sha256 of
    # {"body":{"input":"hi","voice_id":"v1"},"host":"https://api.coze.cn","schema":"tts-pipeline-chunk/1"}
    assert ChunkCache.key({"input": "hi", "voice_id": "v1"}, HOST) == (
        "c93b602df2e7ba1d9d197419dd6a59dad873fa7652bc37c4bf54da2d13e9db07"
    )


def test_key_ignores_order_and_number_spelling() -> None:
    reordered = dict(reversed(list(FULL_BODY.items())))
    assert ChunkCache.key(reordered, HOST) == ChunkCache.key(FULL_BODY, HOST)
    as_floats = {**FULL_BODY, "sample_rate": 24000.0, "loudness_rate": 10.0}
    assert ChunkCache.key(as_floats, HOST) == ChunkCache.key(FULL_BODY, HOST)
    as_tuple = {**FULL_BODY, "context_texts": ("speak softly",)}
    assert ChunkCache.key(as_tuple, HOST) == ChunkCache.key(FULL_BODY, HOST)


def test_key_matches_the_body_the_client_sends() -> None:
    request = SpeechRequest("hi", SpeechParams(voice_id="v1", speed=1.0))
    assert ChunkCache.key(request.body(), HOST) == ChunkCache.key(
        {"input": "hi", "voice_id": "v1", "speed": 1}, HOST
    )


@pytest.mark.parametrize("field", sorted(FULL_BODY))
def test_every_body_field_changes_the_key(field: str) -> None:
    base = ChunkCache.key(FULL_BODY, HOST)
    assert ChunkCache.key({**FULL_BODY, field: OTHER_VALUE[field]}, HOST) != base
    without = {k: v for k, v in FULL_BODY.items() if k != field}
    assert ChunkCache.key(without, HOST) != base


def test_booleans_are_not_numbers_in_the_key() -> None:
    assert ChunkCache.key({"x": True}, HOST) != ChunkCache.key({"x": 1}, HOST)


@pytest.mark.parametrize(
    "other_host",
    [
        "https://api.coze.com",
        "http://api.coze.cn",
        "https://api.coze.cn:8443",
        "http://127.0.0.1:8080",
    ],
)
def test_the_host_changes_the_key(other_host: str) -> None:
    assert ChunkCache.key(FULL_BODY, other_host) != ChunkCache.key(FULL_BODY, HOST)


@pytest.mark.parametrize(
    "spelling",
    [
        "https://api.coze.cn/",
        "HTTPS://API.Coze.CN",
        "https://api.coze.cn:443",
        "https://user:s3cret-token@api.coze.cn/v1?token=s3cret-token#x",
        " https://api.coze.cn ",
    ],
)
def test_host_spellings_of_one_host_share_a_key(spelling: str) -> None:
    assert canonical_host(spelling) == HOST
    assert ChunkCache.key(FULL_BODY, spelling) == ChunkCache.key(FULL_BODY, HOST)


def test_ipv6_and_explicit_ports_survive() -> None:
    assert canonical_host("http://[::1]:8080/x") == "http://[::1]:8080"
    assert canonical_host("http://127.0.0.1:80") == "http://127.0.0.1"


@pytest.mark.parametrize("bad", ["api.coze.cn", "", "https://"])
def test_key_needs_a_base_url(bad: str) -> None:
    with pytest.raises(ValueError, match="base URL"):
        ChunkCache.key(FULL_BODY, bad)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), object()])
def test_key_rejects_what_json_cannot_carry(value: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        ChunkCache.key({"speed": value}, HOST)


# --- entries -----------------------------------------------------------------------------


def test_put_then_get_round_trip(tmp_path: Path) -> None:
    cache = ChunkCache(tmp_path / "cache")
    key = cache.key(FULL_BODY, HOST)
    assert cache.get(key) is None
    stored = cache.put(key, AUDIO, "mp3")
    assert stored.suffix == ".mp3"
    assert stored.read_bytes() == AUDIO
    assert stored.parent == tmp_path / "cache" / key[:2] / key
    assert cache.get(key) == stored
    assert cache.stats == CacheStats(hits=1, misses=1, corrupt=0, writes=1)
    # Another instance on the same directory (a resumed run) finds it too.
    assert ChunkCache(tmp_path / "cache").get(key) == stored


def test_entries_are_immutable(tmp_path: Path) -> None:
    cache = ChunkCache(tmp_path)
    key = cache.key(FULL_BODY, HOST)
    first = cache.put(key, AUDIO, "mp3")
    second = cache.put(key, b"different audio", "mp3")
    assert second == first
    assert first.read_bytes() == AUDIO
    assert cache.stats.writes == 1


def test_checksum_file_is_sha256sum_compatible(tmp_path: Path) -> None:
    cache = ChunkCache(tmp_path)
    key = cache.key(FULL_BODY, HOST)
    stored = cache.put(key, AUDIO, "mp3")
    result = subprocess.run(
        ["sha256sum", "--check", "--status", CHECKSUM_NAME], cwd=stored.parent, check=False
    )
    assert result.returncode == 0


def _truncate(audio: Path, checksum: Path) -> None:
    audio.write_bytes(audio.read_bytes()[:100])


def _flip_a_byte(audio: Path, checksum: Path) -> None:
    data = bytearray(audio.read_bytes())
    data[len(data) // 2] ^= 0x01
    audio.write_bytes(bytes(data))


def _drop_checksum(audio: Path, checksum: Path) -> None:
    checksum.unlink()


def _drop_audio(audio: Path, checksum: Path) -> None:
    audio.unlink()


def _garble_checksum(audio: Path, checksum: Path) -> None:
    checksum.write_text("not a checksum\n")


@pytest.mark.parametrize(
    "damage", [_truncate, _flip_a_byte, _drop_checksum, _drop_audio, _garble_checksum]
)
def test_damaged_entry_is_removed_counted_and_missed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: Any
) -> None:
    cache = ChunkCache(tmp_path)
    key = cache.key(FULL_BODY, HOST)
    cache.put(key, AUDIO, "mp3")
    damage(*entry_files(cache, key))
    with caplog.at_level(logging.WARNING, logger="pipeline.cache"):
        assert cache.get(key) is None
    assert cache.stats.corrupt == 1
    assert cache.stats.misses == 1
    assert not cache.path_for(key).exists()
    assert any(key in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert os.listdir(cache.path_for(key).parent) == []  # no trash left behind
    # And the chunk can be stored again.
    assert cache.put(key, AUDIO, "mp3").read_bytes() == AUDIO


def test_put_replaces_a_damaged_entry(tmp_path: Path) -> None:
    cache = ChunkCache(tmp_path)
    key = cache.key(FULL_BODY, HOST)
    cache.put(key, AUDIO, "mp3")
    _flip_a_byte(*entry_files(cache, key))
    stored = cache.put(key, AUDIO, "mp3")
    assert stored.read_bytes() == AUDIO
    assert cache.stats.corrupt == 1
    assert cache.stats.writes == 2


def test_leftover_temp_directory_is_ignored(tmp_path: Path) -> None:
    cache = ChunkCache(tmp_path)
    key = cache.key(FULL_BODY, HOST)
    # What a put killed before its commit leaves behind: a partial entry under a temp name.
    leftover = cache.path_for(key).parent / f".tmp-{key[:16]}-crashed"
    leftover.mkdir(parents=True)
    (leftover / "chunk.mp3").write_bytes(AUDIO[:10])
    assert cache.get(key) is None
    assert cache.stats.corrupt == 0
    assert cache.put(key, AUDIO, "mp3").read_bytes() == AUDIO
    assert cache.get(key) is not None


def test_keys_are_checked_before_touching_the_disk(tmp_path: Path) -> None:
    cache = ChunkCache(tmp_path)
    for bad in ["../../etc/passwd", "ab", "A" * 64, ""]:
        with pytest.raises(ValueError, match="not a cache key"):
            cache.get(bad)
    with pytest.raises(ValueError, match="extension"):
        cache.put(cache.key(FULL_BODY, HOST), AUDIO, "../mp3")


def test_concurrent_puts_of_one_key_leave_one_intact_entry(tmp_path: Path) -> None:
    cache = ChunkCache(tmp_path)
    key = cache.key(FULL_BODY, HOST)
    # Different bytes per writer: a speech engine need not answer twice with the same audio.
    payloads = [AUDIO + bytes([n]) * 1000 for n in range(8)]
    results: list[Path] = []
    barrier = threading.Barrier(len(payloads))

    def writer(data: bytes) -> None:
        barrier.wait()
        results.append(cache.put(key, data, "mp3"))

    threads = [threading.Thread(target=writer, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == len(payloads)
    assert len(set(results)) == 1
    assert results[0].read_bytes() in payloads
    assert cache.get(key) == results[0]
    assert cache.stats.writes == 1
    assert cache.stats.corrupt == 0
    assert os.listdir(results[0].parent.parent) == [key]  # no temp directories left


def test_concurrent_puts_of_many_keys(tmp_path: Path) -> None:
    cache = ChunkCache(tmp_path)
    keys = [cache.key({**FULL_BODY, "input": f"line {n}"}, HOST) for n in range(40)]

    def writer(chunk: list[str]) -> None:
        for key in chunk:
            cache.put(key, key.encode() * 10, "wav")

    threads = [threading.Thread(target=writer, args=(keys[n::4],)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for key in keys:
        found = cache.get(key)
        assert found is not None and found.read_bytes() == key.encode() * 10
    assert cache.stats.writes == 40


def test_the_token_never_reaches_the_disk(tmp_path: Path) -> None:
    token = "pat_SECRET_do_not_store"
    cache = ChunkCache(tmp_path)
    key = cache.key(FULL_BODY, f"https://bearer:{token}@api.coze.cn/?access_token={token}")
    assert key == cache.key(FULL_BODY, HOST)
    cache.put(key, AUDIO, "mp3")
    with OutputLock(tmp_path):
        pass
    for path in tmp_path.rglob("*"):
        assert token not in path.name
        if path.is_file():
            assert token.encode() not in path.read_bytes()


# --- the output lock ---------------------------------------------------------------------


def test_lock_refuses_a_second_holder_in_the_same_process(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with OutputLock(out) as lock:
        assert lock.path == out / LOCK_NAME
        assert f"pid {os.getpid()}\n" in lock.path.read_text()
        with pytest.raises(ConfigError) as caught:
            OutputLock(out).__enter__()
        message = str(caught.value)
        assert f"another tts-pipeline run (pid {os.getpid()}) is using {out}" in message
        assert "use another --out" in message
    # Released: the next run gets it, and the finished run left no pid behind.
    assert (out / LOCK_NAME).read_text() == ""
    with OutputLock(out):
        pass


def test_stale_lock_file_does_not_block(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).write_text("pid 999999\nstarted 2020-01-01T00:00:00+0000\n")
    with OutputLock(tmp_path) as lock:
        assert f"pid {os.getpid()}\n" in lock.path.read_text()


_HOLDER = """
import sys, time
from pathlib import Path
from pipeline.cache import OutputLock
with OutputLock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_lock_is_held_across_processes_and_freed_when_the_holder_is_killed(
    tmp_path: Path,
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(ConfigError, match=rf"\(pid {holder.pid}\) is using"):
            OutputLock(tmp_path).__enter__()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        with OutputLock(tmp_path) as lock:
            assert f"pid {os.getpid()}\n" in lock.path.read_text()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)
        if holder.stdout is not None:
            holder.stdout.close()


def test_one_lock_object_cannot_be_entered_twice(tmp_path: Path) -> None:
    lock = OutputLock(tmp_path)
    with lock, pytest.raises(RuntimeError, match="already held"):
        lock.__enter__()
