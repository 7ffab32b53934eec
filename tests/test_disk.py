"""Issue 7.3: disks and files. An output directory that cannot be written, a disk that fills
up while writing, damaged or foreign cache entries, and an output directory left by an older
run of a changed manifest."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest
from torture.harness import (
    chapter_files,
    check_wav_whole,
    cli_env,
    digests,
    load_plan,
    run_args,
    run_cli,
    run_in_process,
    write_job,
)

from pipeline import cache as cache_module
from pipeline.cache import ChunkCache
from pipeline.errors import ConfigError
from pipeline.localserver import LocalServer
from pipeline.report import RunReport

MakeServer = Callable[..., LocalServer]
CHUNKS = 30
CONCURRENCY = 8  # run_in_process's
PER_CHAPTER = 10


def _run(job: Path, out: Path, server: LocalServer) -> RunReport:
    plan = load_plan(job)
    return anyio.run(lambda: run_in_process(plan, out, server.base_url))


def _leftovers(out: Path) -> list[str]:
    """Temporary files beside the final names: a failed write must not leave any."""
    return sorted(p.name for p in out.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def job(tmp_path: Path) -> Path:
    return write_job(tmp_path / "job", CHUNKS, per_chapter=PER_CHAPTER)


# -- the output directory cannot be written ----------------------------------------------


def test_output_directory_under_a_file_is_a_clean_error(
    tmp_path: Path, job: Path, make_server: MakeServer
) -> None:
    server = make_server()
    (tmp_path / "a-file").write_text("not a folder")
    done = run_cli(run_args(job, tmp_path / "a-file" / "out", server.base_url), cli_env("t"))
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2, done.stderr
    assert "a-file" in done.stderr
    assert server.stats.requests == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_output_directory_is_a_clean_error(
    tmp_path: Path, job: Path, make_server: MakeServer
) -> None:
    server = make_server()
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        done = run_cli(run_args(job, out, server.base_url), cli_env("t"))
    finally:
        out.chmod(stat.S_IRWXU)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2, done.stderr
    assert server.stats.requests == 0


# -- disk full -----------------------------------------------------------------------------


class Disk:
    """A disk with ``free`` bytes: fsync of a bigger regular file fails with ENOSPC, as a
    delayed-allocation file system reports it, and so does os.write past it (the cache
    writes with os.write and syncs in batches). ``None``: plenty of room. ``only_under``:
    the files under that folder only (the cache on its own disk)."""

    def __init__(self) -> None:
        self.free: int | None = None
        self.only_under: Path | None = None
        self.refused = 0
        self._fsync = os.fsync
        self._write = os.write

    def _refuse(self, fd: int, size: int) -> None:
        info = os.fstat(fd)
        if self.free is not None and stat.S_ISREG(info.st_mode) and size > self.free:
            path = Path(os.readlink(f"/proc/self/fd/{fd}"))
            if self.only_under is None or path.is_relative_to(self.only_under):
                self.refused += 1
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def fsync(self, fd: int) -> None:
        self._refuse(fd, os.fstat(fd).st_size)
        self._fsync(fd)

    def write(self, fd: int, data: bytes) -> int:
        self._refuse(fd, os.fstat(fd).st_size + len(data))
        return self._write(fd, data)


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[Disk]:
    d = Disk()
    monkeypatch.setattr(os, "fsync", d.fsync)
    monkeypatch.setattr(os, "write", d.write)
    yield d


def test_disk_full_while_writing_chapters_fails_them_cleanly_and_a_rerun_completes(
    tmp_path: Path, job: Path, make_server: MakeServer, disk: Disk
) -> None:
    server = make_server()
    out = tmp_path / "out"
    disk.free = 64_000  # the chunks and the report fit; a chapter file does not
    report = _run(job, out, server)
    assert disk.refused >= CHUNKS // PER_CHAPTER
    assert report.status == "failed"
    for chapter in report.chapters:
        assert chapter.status == "failed" and chapter.error is not None
        assert "No space left on device" in chapter.error.message
    assert chapter_files(out) == {} and _leftovers(out) == []
    on_disk = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert on_disk["status"] == "failed"

    requests = server.stats.requests
    disk.free = None
    again = _run(job, out, server)
    assert again.status == "ok"
    assert server.stats.requests == requests, "the chunks were paid for already"
    assert len(chapter_files(out)) == CHUNKS // PER_CHAPTER
    for name in chapter_files(out):
        check_wav_whole(out / name)


def test_disk_full_for_the_cache_stops_buying_and_a_rerun_completes(
    tmp_path: Path, job: Path, make_server: MakeServer, disk: Disk
) -> None:
    server = make_server()
    out = tmp_path / "out"
    disk.free, disk.only_under = 0, out / ".cache"
    report = _run(job, out, server)
    assert report.status == "failed"
    assert json.loads((out / "report.json").read_text(encoding="utf-8"))["status"] == "failed"
    failed = [c for c in report.chapters if c.status == "failed"]
    assert failed and all(c.error and "No space left" in c.error.message for c in failed)
    assert all(c.status != "ok" for c in report.chapters) and chapter_files(out) == {}
    # Every answer bought now would be thrown away: the run stops buying.
    assert server.stats.audio_answers <= 2 * CONCURRENCY
    assert not any(p.name.startswith(".tmp-") for p in (out / ".cache").rglob("*"))

    disk.free = None
    again = _run(job, out, server)
    assert again.status == "ok"
    assert len(chapter_files(out)) == CHUNKS // PER_CHAPTER


# -- damaged and foreign caches ------------------------------------------------------------


def test_truncated_and_corrupt_cache_entries_are_synthesized_again(
    tmp_path: Path, job: Path, make_server: MakeServer
) -> None:
    server = make_server()
    first = tmp_path / "first"
    assert _run(job, first, server).status == "ok"
    expected = digests(chapter_files(first))
    entries = sorted(p for p in (first / ".cache").glob("??/*") if p.is_dir())
    assert len(entries) == CHUNKS
    truncated, flipped, no_checksum = entries[0], entries[1], entries[2]
    audio = truncated / "chunk.wav"
    audio.write_bytes(audio.read_bytes()[:100])
    data = bytearray((flipped / "chunk.wav").read_bytes())
    data[-1] ^= 0xFF
    (flipped / "chunk.wav").write_bytes(bytes(data))
    (no_checksum / "chunk.sha256").unlink()

    second = tmp_path / "second"
    shutil.copytree(first / ".cache", second / ".cache")
    server.reset()
    assert _run(job, second, server).status == "ok"
    assert server.stats.requests == 3, "exactly the three damaged entries are bought again"
    assert digests(chapter_files(second)) == expected


def test_a_cache_from_another_host_or_format_is_never_used(
    tmp_path: Path, job: Path, make_server: MakeServer
) -> None:
    server, other = make_server(), make_server()
    first = tmp_path / "first"
    assert _run(job, first, server).status == "ok"
    expected = digests(chapter_files(first))
    # Junk of another layout, or of a crashed writer, beside the real entries.
    cache = first / ".cache"
    (cache / "zz").mkdir()
    (cache / "zz" / ("f" * 64)).write_text("a file where an entry folder belongs")
    (cache / "ab").mkdir(exist_ok=True)
    (cache / "ab" / ".tmp-abcdef-123").mkdir()
    (cache / "ab" / "not-a-key").mkdir()
    (cache / "cache.db").write_bytes(b"SQLite format 3\x00")

    second = tmp_path / "second"
    shutil.copytree(cache, second / ".cache")
    assert _run(job, second, other).status == "ok"
    assert other.stats.requests == CHUNKS, "an answer of another host was reused"
    assert digests(chapter_files(second)) == expected

    mp3_job = job.with_name("mp3.yaml")
    mp3_job.write_text(job.read_text().replace("response_format: wav", "response_format: mp3"))
    third = tmp_path / "third"
    shutil.copytree(cache, third / ".cache")
    server.reset()
    assert _run(mp3_job, third, server).status == "ok"
    assert server.stats.requests == CHUNKS, "a wav answer was reused for mp3"
    audio = [p.suffix for p in third.glob("ch*") if not p.name.endswith(".chunks.json")]
    assert sorted(audio) == [".mp3"] * (CHUNKS // PER_CHAPTER)
    assert ChunkCache(cache).get("f" * 64) is None


# -- an output directory from an older run of a changed manifest --------------------------


def test_changed_manifest_resynthesizes_only_what_changed_and_reports_stale_chapters(
    tmp_path: Path, make_server: MakeServer
) -> None:
    server = make_server()
    folder = tmp_path / "job"
    job = write_job(folder, 30, per_chapter=10)
    out = tmp_path / "out"
    assert _run(job, out, server).status == "ok"
    old = digests(chapter_files(out))

    text = job.read_text(encoding="utf-8")
    lines = text.splitlines()
    ch2 = lines.index("  - id: ch002")
    changed_line = ch2 + 2
    lines[changed_line] = '      - text: "A changed line."'
    ch3 = lines.index("  - id: ch003")
    lines[ch3] = "  - id: ch004"  # ch003 renamed: its old file is stale
    job.write_text("\n".join(lines) + "\n", encoding="utf-8")
    server.reset()
    report = _run(job, out, server)
    assert report.status == "ok"
    assert server.stats.requests == 1, "only the changed line is synthesized again"
    files = digests(chapter_files(out))
    assert files["ch001.wav"] == old["ch001.wav"]
    assert files["ch002.wav"] != old["ch002.wav"]
    assert files["ch004.wav"] == old["ch003.wav"]
    assert report.extra.get("stale_outputs") == ["ch003.wav"]
    on_disk = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert on_disk["stale_outputs"] == ["ch003.wav"]
    assert "ch003.wav" in files, "a stale chapter is reported, not deleted"


def test_cache_module_reads_only_what_key_makes() -> None:
    # The foreign-layout test above relies on it: a key of another shape is refused, never
    # turned into a path.
    with pytest.raises(ConfigError):
        ChunkCache(Path("/nonexistent")).path_for("../" + "a" * 61)
    assert cache_module.CACHE_SCHEMA.endswith("/1")
