"""Atomic writers: whole files or none, never through a symbolic link, clear errors."""

from __future__ import annotations

import errno
import os
import pickle
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import fileio
from pipeline.errors import PipelineError, StorageError
from pipeline.fileio import (
    FILE_MODE,
    append_text,
    atomic_open,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    publish,
    remove_leftover_temps,
)


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_write_is_whole_with_the_usual_mode_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "report.json"
    atomic_write_text(target, "première\n")
    assert target.read_text(encoding="utf-8") == "première\n"
    assert stat.S_IMODE(target.stat().st_mode) == FILE_MODE
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert _temps(target.parent) == []


def test_a_symlink_at_the_final_name_is_refused_and_its_target_untouched(
    tmp_path: Path,
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / "out" / "report.json"
    link.parent.mkdir()
    link.symlink_to(victim)
    with pytest.raises(StorageError, match="symbolic link") as caught:
        atomic_write_text(link, "overwrite")
    assert caught.value.errno == errno.ELOOP
    assert str(link) in str(caught.value)
    assert victim.read_text() == "precious"
    assert link.is_symlink() and _temps(link.parent) == []


def test_a_dangling_symlink_creates_nothing_where_it_points(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "created.txt"
    (tmp_path / "elsewhere").mkdir()
    link = tmp_path / "chapter.srt"
    link.symlink_to(elsewhere)
    for write in (
        lambda: atomic_write_text(link, "1\n"),
        lambda: append_text(link, "1\n"),
    ):
        with pytest.raises(StorageError, match="symbolic link"):
            write()
    assert not elsewhere.exists()


def test_a_folder_at_the_final_name_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "out.wav"
    folder.mkdir()
    (folder / "keep").write_text("x")
    with pytest.raises(StorageError) as caught:
        with atomic_path(folder) as tmp:
            tmp.write_bytes(b"audio")
    assert caught.value.errno == errno.EISDIR
    assert str(caught.value) == (
        f"refusing to write {folder}: it is a folder; remove that folder or choose another name"
    )
    assert (folder / "keep").read_text() == "x" and _temps(tmp_path) == []


def test_a_fifo_at_the_final_name_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "summary.md"
    os.mkfifo(fifo)
    with pytest.raises(StorageError, match="not a regular file"):
        append_text(fifo, "## run\n")
    with pytest.raises(StorageError, match="not a regular file"):
        atomic_write_text(fifo, "x")


def test_a_planted_temp_name_is_never_written_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    names: Iterator[str] = iter(["0" * 12, "1" * 12])
    monkeypatch.setattr(fileio.secrets, "token_hex", lambda n: next(names))
    target = tmp_path / "ch001.mp3"
    (tmp_path / f".ch001.mp3.{'0' * 12}.tmp").symlink_to(victim)
    atomic_write_bytes(target, b"audio")
    assert target.read_bytes() == b"audio"
    assert victim.read_text() == "precious"


def test_a_writer_that_swaps_its_temp_file_for_a_link_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    target = tmp_path / "book.m4b"
    with pytest.raises(StorageError, match="cannot write"):
        with atomic_path(target) as tmp:
            tmp.unlink()
            tmp.symlink_to(victim)
    assert not target.exists() and victim.read_text() == "precious"


def test_the_callers_own_error_passes_through_and_the_old_file_stays(tmp_path: Path) -> None:
    target = tmp_path / "ch.wav"
    target.write_bytes(b"old")
    with pytest.raises(ValueError, match="encoder"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise ValueError("encoder failed")
    with pytest.raises(KeyError):
        with atomic_open(target) as f:
            f.write(b"half")
            raise KeyError("x")
    assert target.read_bytes() == b"old" and _temps(tmp_path) == []


def _failing_fsync(code: int) -> object:
    def fsync(fd: int) -> None:
        raise OSError(code, os.strerror(code))

    return fsync


@pytest.mark.parametrize(
    ("code", "advice"),
    [
        (errno.ENOSPC, "No space left on device; free some space or choose another folder"),
        (errno.EIO, "Input/output error"),
    ],
)
def test_a_failed_flush_to_disk_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, advice: str
) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    monkeypatch.setattr(os, "fsync", _failing_fsync(code))
    with pytest.raises(StorageError) as caught:
        atomic_write_text(target, "new")
    assert str(caught.value) == f"cannot write {target}: {advice}"
    assert caught.value.errno == code
    assert target.read_text() == "old" and _temps(tmp_path) == []


@pytest.mark.parametrize(
    ("code", "advice"),
    [
        (errno.EROFS, "the file system is read-only: choose another folder"),
        (errno.EACCES, "allow writing there or choose another folder"),
        (errno.ENOSPC, "free some space or choose another folder"),
    ],
)
def test_a_folder_that_refuses_new_files_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, advice: str
) -> None:
    real_open = os.open

    def refusing_open(path: str | Path, flags: int, *args: int, **kwargs: object) -> int:
        if flags & os.O_CREAT:
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refusing_open)
    target = tmp_path / "junit.xml"
    for write in (lambda: atomic_write_text(target, "x"), lambda: append_text(target, "x")):
        with pytest.raises(StorageError) as caught:
            write()
        message = str(caught.value)
        assert message.startswith("cannot ") and str(target) in message
        assert message.endswith(f"{os.strerror(code)}; {advice}")
        assert "\n" not in message


def test_a_file_where_the_folder_belongs_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    target = tmp_path / "a-file" / "out" / "report.json"
    with pytest.raises(StorageError, match="a-file") as caught:
        atomic_write_text(target, "x")
    assert caught.value.errno == errno.ENOTDIR


def test_a_very_long_name_still_gets_a_temp_name(tmp_path: Path) -> None:
    target = tmp_path / ("é" * 127)  # 254 bytes: the temp name must be shortened
    atomic_write_text(target, "x")
    assert target.read_text() == "x"


def test_append_adds_to_a_regular_file(tmp_path: Path) -> None:
    summary = tmp_path / "step-summary.md"
    append_text(summary, "one\n")
    append_text(summary, "two\n")
    assert summary.read_text() == "one\ntwo\n"


def test_publish_moves_a_file_and_refuses_links_and_folders(tmp_path: Path) -> None:
    src = tmp_path / "made.mp3"
    src.write_bytes(b"audio")
    (tmp_path / "folder.mp3").mkdir()
    (tmp_path / "link.mp3").symlink_to(tmp_path / "victim")
    for bad in ("folder.mp3", "link.mp3"):
        with pytest.raises(StorageError, match="refusing to write"):
            publish(src, tmp_path / bad)
    assert not (tmp_path / "victim").exists()
    publish(src, tmp_path / "say" / "hello.mp3")
    assert (tmp_path / "say" / "hello.mp3").read_bytes() == b"audio" and not src.exists()


def test_leftover_temps_of_a_killed_writer_are_removed(tmp_path: Path) -> None:
    (tmp_path / ".ch001.mp3.0123456789ab.tmp").write_bytes(b"half")
    (tmp_path / ".report.json.ba9876543210.tmp").symlink_to(tmp_path / "nowhere")
    keep = [".tts-pipeline.lock", ".notes.tmp", "ch001.mp3", ".x.0123456789ab.tmp.bak"]
    for name in keep:
        (tmp_path / name).write_text("mine")
    assert remove_leftover_temps(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)
    assert remove_leftover_temps(tmp_path / "missing") == 0


def test_storage_error_is_a_pipeline_error_and_an_os_error() -> None:
    error = StorageError(errno.ENOSPC, "cannot write x: No space left on device")
    assert isinstance(error, PipelineError) and isinstance(error, OSError)
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is StorageError and again.errno == errno.ENOSPC
    assert str(again) == "cannot write x: No space left on device"
