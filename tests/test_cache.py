"""The chunk cache (keys, atomic entries, damage detection) and the output directory lock."""

from __future__ import annotations

import errno
import logging
import os
import shutil
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
from pipeline.errors import ConfigError, StorageError
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
    with pytest.raises(ConfigError, match="base URL"):
        ChunkCache.key(FULL_BODY, bad)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), object()])
def test_key_rejects_what_json_cannot_carry(value: object) -> None:
    with pytest.raises((ConfigError, TypeError)):
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
        with pytest.raises(ConfigError, match="not a cache key"):
            cache.get(bad)
    with pytest.raises(ConfigError, match="extension"):
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


# --- self-repair: whatever is at an entry's path that is not a valid entry ---------------


def _quarantined(cache: ChunkCache) -> list[str]:
    folder = cache.directory / ".quarantine"
    return sorted(os.listdir(folder)) if folder.exists() else []


def _plain_file(cache: ChunkCache, key: str, other: str, outside: Path) -> None:
    cache.path_for(key).write_bytes(AUDIO)


def _dangling_link(cache: ChunkCache, key: str, other: str, outside: Path) -> None:
    cache.path_for(key).symlink_to(outside / "nowhere")


def _link_to_another_entry(cache: ChunkCache, key: str, other: str, outside: Path) -> None:
    cache.path_for(key).symlink_to(cache.path_for(other))


def _copy_of_another_entry(cache: ChunkCache, key: str, other: str, outside: Path) -> None:
    shutil.copytree(cache.path_for(other), cache.path_for(key))


def _member_linked_out(cache: ChunkCache, key: str, other: str, outside: Path) -> None:
    # The audio file of a real entry replaced by a link to the same bytes elsewhere.
    (outside / "copy.mp3").write_bytes(AUDIO)
    audio, _ = entry_files(cache, key)
    audio.unlink()
    audio.symlink_to(outside / "copy.mp3")


def _fifo_as_audio(cache: ChunkCache, key: str, other: str, outside: Path) -> None:
    audio, _ = entry_files(cache, key)
    audio.unlink()
    os.mkfifo(audio)


@pytest.mark.parametrize(
    "damage",
    [
        _plain_file,
        _dangling_link,
        _link_to_another_entry,
        _copy_of_another_entry,
        _member_linked_out,
        _fifo_as_audio,
    ],
)
def test_anything_but_a_valid_entry_is_moved_aside_and_bought_again(
    tmp_path: Path, damage: Any
) -> None:
    cache = ChunkCache(tmp_path / "cache")
    outside = tmp_path / "outside"
    outside.mkdir()
    key, other = (cache.key({**FULL_BODY, "input": t}, HOST) for t in ("one", "two"))
    other_audio = cache.put(other, b"other audio", "mp3")
    if damage in (_member_linked_out, _fifo_as_audio):
        cache.put(key, AUDIO, "mp3")
    else:
        cache.path_for(key).parent.mkdir(parents=True, exist_ok=True)
    damage(cache, key, other, outside)

    assert cache.get(key) is None
    assert cache.stats.corrupt == 1
    assert len(_quarantined(cache)) == 1 and _quarantined(cache)[0].startswith(key)
    stored = cache.put(key, AUDIO, "mp3")
    assert stored.read_bytes() == AUDIO and not stored.parent.is_symlink()
    assert cache.get(key) == stored
    # Nothing outside the cache and no other entry was touched.
    assert other_audio.read_bytes() == b"other audio" and cache.get(other) == other_audio
    assert sorted(p.name for p in outside.iterdir()) in ([], ["copy.mp3"])


def test_put_over_damage_it_has_not_looked_at_succeeds(tmp_path: Path) -> None:
    # The first re-run after the damage used to pay, fail to store (ENOTDIR) and exit 1.
    cache = ChunkCache(tmp_path)
    key = cache.key(FULL_BODY, HOST)
    cache.path_for(key).parent.mkdir(parents=True)
    cache.path_for(key).write_text("junk")
    assert cache.put(key, AUDIO, "mp3").read_bytes() == AUDIO
    assert cache.stats == CacheStats(hits=0, misses=0, corrupt=1, writes=1)


@pytest.mark.parametrize("junk", ["file", "link"])
def test_a_shard_folder_that_is_not_a_folder_is_moved_aside(tmp_path: Path, junk: str) -> None:
    cache = ChunkCache(tmp_path / "cache")
    key = cache.key(FULL_BODY, HOST)
    shard = cache.path_for(key).parent
    shard.parent.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if junk == "file":
        shard.write_text("junk")
    else:
        shard.symlink_to(elsewhere)
    assert cache.get(key) is None
    assert cache.put(key, AUDIO, "mp3").parent.parent == shard and shard.is_dir()
    assert not shard.is_symlink() and list(elsewhere.iterdir()) == []


def test_an_entry_of_an_older_version_without_its_key_record_is_used(tmp_path: Path) -> None:
    cache = ChunkCache(tmp_path)
    key = cache.key(FULL_BODY, HOST)
    stored = cache.put(key, AUDIO, "mp3")
    (stored.parent / KEY_NAME).unlink()
    assert ChunkCache(tmp_path).get(key) == stored


def _no_renames(code: int) -> Any:
    def rename(src: object, dst: object) -> None:
        raise OSError(code, os.strerror(code))

    return rename


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_a_damaged_entry_in_a_cache_that_cannot_change_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    cache = ChunkCache(tmp_path)
    key = cache.key(FULL_BODY, HOST)
    stored = cache.put(key, AUDIO, "mp3")
    stored.write_bytes(b"garbled")
    monkeypatch.setattr(os, "rename", _no_renames(code))
    with pytest.raises(ConfigError) as caught:
        ChunkCache(tmp_path).get(key)
    message = str(caught.value)
    assert f"cache entry {cache.path_for(key)} is " in message
    assert "cannot be moved aside" in message and os.strerror(code) in message
    assert "--cache-dir" in message and "\n" not in message
    # During a run (after the key's claim), the same damage is a StorageError, an OSError.
    with pytest.raises(StorageError, match="cannot be moved aside") as during:
        ChunkCache(tmp_path).find(key)
    assert during.value.errno == code


@pytest.mark.parametrize(
    ("code", "advice"),
    [
        (errno.ENOSPC, "free some space"),
        (errno.EROFS, "read-only"),
        (errno.EACCES, "allow writing there"),
    ],
)
def test_a_cache_that_refuses_writes_raises_a_storage_error_and_keeps_no_half_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, advice: str
) -> None:
    cache = ChunkCache(tmp_path)
    key = cache.key(FULL_BODY, HOST)
    cache.put(cache.key({"input": "first"}, HOST), AUDIO, "mp3")  # staging made

    def refuse(fd: int, data: bytes) -> int:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "write", refuse)
    with pytest.raises(StorageError) as caught:
        cache.put(key, AUDIO, "mp3")
    assert isinstance(caught.value, OSError) and caught.value.errno == code
    message = str(caught.value)
    assert message.startswith(f"cannot store a chunk in the cache {tmp_path}: ")
    assert advice in message
    monkeypatch.undo()
    assert cache.get(key) is None
    staging = tmp_path / ".staging"
    assert [p for p in staging.rglob("*") if p.is_dir() and key in p.name] == []


# --- the output lock, hostile names --------------------------------------------------------


def test_a_symlink_at_the_lock_name_is_refused_and_its_target_kept(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious data")
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).symlink_to(victim)
    with pytest.raises(ConfigError, match="is a symbolic link; remove it"):
        OutputLock(out).__enter__()
    assert victim.read_text() == "precious data"


def test_a_dangling_symlink_at_the_lock_name_creates_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).symlink_to(tmp_path / "created-elsewhere")
    with pytest.raises(ConfigError, match="symbolic link"):
        OutputLock(out).__enter__()
    assert not (tmp_path / "created-elsewhere").exists()


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_non_file_at_the_lock_name_is_refused(tmp_path: Path, kind: str) -> None:
    lock = tmp_path / LOCK_NAME
    if kind == "folder":
        lock.mkdir()
    else:
        os.mkfifo(lock)
    with pytest.raises(ConfigError, match=f"cannot use the output directory {tmp_path}"):
        OutputLock(tmp_path).__enter__()


@pytest.mark.parametrize(
    ("where", "code"),
    [("open", errno.EACCES), ("open", errno.EROFS), ("pwrite", errno.ENOSPC)],
)
def test_a_lock_that_cannot_be_written_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, code: int
) -> None:
    real = getattr(os, where)

    def failing(*args: Any, **kwargs: Any) -> Any:
        if where == "pwrite" or str(args[0]).endswith(LOCK_NAME):
            raise OSError(code, os.strerror(code))
        return real(*args, **kwargs)

    monkeypatch.setattr(os, where, failing)
    with pytest.raises(ConfigError) as caught:
        OutputLock(tmp_path).__enter__()
    assert str(caught.value).startswith(f"cannot use the output directory {tmp_path}: ")
    assert os.strerror(code) in str(caught.value)
    monkeypatch.undo()
    with OutputLock(tmp_path):  # nothing was left held
        pass


def test_the_lock_removes_temp_files_a_killed_writer_left(tmp_path: Path) -> None:
    (tmp_path / ".ch001.wav.0123456789ab.tmp").write_bytes(b"half a chapter")
    (tmp_path / "ch001.wav").write_bytes(b"a chapter")
    with OutputLock(tmp_path):
        assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_NAME, "ch001.wav"]


@pytest.mark.parametrize("name", [".quarantine", ".staging"])
def test_the_caches_own_folders_are_never_followed_out_of_it(tmp_path: Path, name: str) -> None:
    cache_dir, outside = tmp_path / "cache", tmp_path / "outside"
    outside.mkdir()
    cache_dir.mkdir()
    (cache_dir / name).symlink_to(outside)
    cache = ChunkCache(cache_dir)
    key = cache.key(FULL_BODY, HOST)
    cache.path_for(key).parent.mkdir()
    cache.path_for(key).write_text("junk")  # to be moved aside
    with cache.claim(key):
        assert cache.get(key) is None
        assert cache.put(key, AUDIO, "mp3").read_bytes() == AUDIO
    cache.close()
    assert list(outside.iterdir()) == []
    assert (cache_dir / name).is_dir() and not (cache_dir / name).is_symlink()
