"""Outputs that go away during a run (issue 12): a stdout closed by its reader (``| head -1``)
and a full disk where the output lock or report.json is written.

A closed stdout silences the progress printer, never the run; a report.json that cannot be
written after a paid run keeps the chapter files and says why in one line, with exit 1.
"""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import cli_command, cli_env, texts, write_job

from pipeline import fileio, locks
from pipeline.cli import main
from pipeline.progress import JsonlProgress, Outlet, PlainProgress

CHAPTERS = {"ch01": texts(12, "one"), "ch02": texts(12, "two"), "ch03": texts(12, "three")}


def _job(tmp_path: Path) -> Path:
    return write_job(tmp_path, CHAPTERS, run={"max_chunk_bytes": 64})


def _assert_complete(out: Path, status: str = "ok") -> None:
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["status"] == status
    assert [c["id"] for c in report["chapters"]] == list(CHAPTERS)
    for chapter in report["chapters"]:
        assert chapter["status"] == "ok"
        assert (out / chapter["output"]).stat().st_size > 44  # more than a wav header


class _ClosedPipe(io.StringIO):
    """A stream whose reader is gone: every write fails as a closed pipe does."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")


@pytest.mark.parametrize("kind", [PlainProgress, JsonlProgress])
def test_a_printer_goes_quiet_once_its_reader_is_gone(kind: type) -> None:
    stream = _ClosedPipe()
    progress = kind(stream)
    progress.start(chunks=2, characters=20, cached=0)  # EPIPE here: nothing raised
    progress.message("more")
    progress.finish(status="ok", elapsed_s=1.0)


def test_an_outlet_passes_other_write_errors_on() -> None:
    class Full(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    outlet = Outlet(Full())
    with pytest.raises(OSError, match="No space"):
        outlet.write("line\n")
    assert not outlet.gone


def _run_reading_lines(tmp_path: Path, mode: str, keep: int) -> tuple[int, str, list[str]]:
    """Run with stdout and stderr on pipes; read ``keep`` lines of ``mode``'s stream, then
    close it as ``| head`` does and let the run go on."""
    out = tmp_path / "out"
    args = ("run", _job(tmp_path), "-o", out, "--local", "--engine", "tone", "--progress", mode)
    with subprocess.Popen(
        cli_command(*args), env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=tmp_path,
    ) as proc:  # fmt: skip
        assert proc.stdout is not None and proc.stderr is not None
        watched = proc.stdout if mode == "jsonl" else proc.stderr
        other = proc.stderr if mode == "jsonl" else proc.stdout
        lines = [watched.readline() for _ in range(keep)]
        watched.close()
        rest = other.read()
        code = proc.wait(timeout=60)
    return code, rest, lines


def test_jsonl_into_head_1_finishes_the_run_and_its_report(tmp_path: Path) -> None:
    code, stderr, lines = _run_reading_lines(tmp_path, "jsonl", keep=1)
    assert json.loads(lines[0])["event"] == "start"
    assert code == 0, stderr
    assert "Traceback" not in stderr and "stopped" not in stderr
    assert "ok: audio in" in stderr
    _assert_complete(tmp_path / "out")


def test_plain_progress_whose_reader_goes_away_finishes_the_run(tmp_path: Path) -> None:
    # Plain lines go to stderr: a reader of stderr that leaves after one line.
    code, stdout, lines = _run_reading_lines(tmp_path, "plain", keep=1)
    assert "chunks" in lines[0]
    assert code == 0 and "Traceback" not in stdout
    _assert_complete(tmp_path / "out")


def test_jsonl_into_a_pipe_closed_before_the_first_line_finishes_the_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line
    try:
        result = subprocess.run(
            cli_command("run", _job(tmp_path), "-o", out, "--local", "--engine", "tone",
                        "--progress", "jsonl"),
            env=cli_env(), stdout=write, stderr=subprocess.PIPE, text=True, timeout=60,
            cwd=tmp_path, check=False,
        )  # fmt: skip
    finally:
        os.close(write)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    _assert_complete(out)


# --- a full disk where the lock or report.json is written ----------------------------------


def _no_space(*args: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_for_the_output_lock_exits_2_before_anything_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(locks, "_write_owner", _no_space)
    out = tmp_path / "out"
    code = main(["run", str(_job(tmp_path)), "-o", str(out), "--local", "--engine", "tone"], {})
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"cannot use the output directory {out}" in err and "No space left" in err
    assert not (out / ".cache").exists() and not (out / "report.json").exists()


def test_a_full_disk_for_report_json_keeps_the_chapters_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    real = fileio.atomic_write_text

    def full_for_the_report(path: Path, text: str) -> None:
        if Path(path).name == "report.json":
            raise fileio.storage_error(_error(errno.ENOSPC), "write", path)
        real(path, text)

    monkeypatch.setattr("pipeline.report.atomic_write_text", full_for_the_report)
    code = main(["run", str(_job(tmp_path)), "-o", str(out), "--local", "--engine", "tone",
                 "--progress", "none"], {})  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    why = [line for line in err.splitlines() if "report.json" in line]
    assert len(why) == 1, err
    assert why[0].startswith("tts-pipeline: error: report.json was not written: cannot write ")
    assert "No space left on device" in why[0] and f"kept in {out}/" in why[0]
    assert not (out / "report.json").exists()
    for cid in CHAPTERS:
        assert (out / f"{cid}.wav").stat().st_size > 44
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_a_read_only_report_json_through_os_write_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Lower down: the temp file of report.json cannot be created (a read-only folder).
    out = tmp_path / "out"
    real_open = os.open

    def read_only_for_the_report(path: object, *args: Any, **kwargs: Any) -> int:
        if str(path).startswith(str(out / ".report.json.")):
            raise _error(errno.EROFS)
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(fileio.os, "open", read_only_for_the_report)
    code = main(["run", str(_job(tmp_path)), "-o", str(out), "--local", "--engine", "tone",
                 "--progress", "none"], {})  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "report.json was not written" in err and "Read-only file system" in err
    assert all((out / f"{cid}.wav").exists() for cid in CHAPTERS), (err, sorted(os.listdir(out)))


def _error(code: int) -> OSError:
    return OSError(code, os.strerror(code))
