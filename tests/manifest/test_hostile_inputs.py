"""Hostile input files (issue 12): FIFOs, devices, kernel files, giant files, YAML alias
bombs and loops, and texts that hold the API token. Each is a FILE:LINE problem, fast."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.errors import ManifestError
from pipeline.manifest import load_job
from pipeline.manifest.inputfile import read_bounded
from pipeline.redact import Redactor
from pipeline.settings import MAX_INPUT_FILE_BYTES, MAX_YAML_NODES

CANARY = "pat_CANARYmanifest0123456789"
HEAD = "defaults: {voice_id: v}\nchapters:\n"


def problems(path: Path, holds_token: object = None) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_job(path, holds_token=holds_token)  # type: ignore[arg-type]
    return [str(p) for p in caught.value.problems]


def text_file_job(tmp_path: Path, target: str) -> Path:
    job = tmp_path / "job.yaml"
    job.write_text(HEAD + f"  - id: a\n    text_file: {target}\n", encoding="utf-8")
    return job


@pytest.mark.parametrize(("target", "reason"), [
    ("/dev/zero", "is a device"),
    ("/dev/null", "is a device"),
    ("/proc/self/environ", "is a file of the kernel"),
    ("/proc/self/status", "is a file of the kernel"),
    ("/sys/kernel/mm/transparent_hugepage/enabled", "is a file of the kernel"),
    (".", "is a directory"),
    ("missing.txt", "no such file"),
    ("job.yaml/inside", "no such file"),
])
def test_text_file_that_is_not_a_regular_file(tmp_path: Path, target: str, reason: str) -> None:
    if target.startswith("/sys") and not Path(target).exists():
        pytest.skip("no such kernel file here")
    started = time.process_time()
    found = problems(text_file_job(tmp_path, target))
    assert time.process_time() - started < 2
    assert any(p.startswith(f"{tmp_path / 'job.yaml'}:4: text_file ") and reason in p
               for p in found), found


def test_text_file_that_is_a_fifo_does_not_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    started = time.process_time()
    found = problems(text_file_job(tmp_path, "pipe"))
    assert time.process_time() - started < 2
    assert "is a FIFO" in found[0]


def test_text_file_symlink_to_a_regular_file_is_fine(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("hello there\n", encoding="utf-8")
    (tmp_path / "link.txt").symlink_to(tmp_path / "real.txt")
    job = load_job(text_file_job(tmp_path, "link.txt"))
    assert [line.text for line in job.chapters[0].lines] == ["hello there"]


def test_symlink_to_a_device_is_refused(tmp_path: Path) -> None:
    (tmp_path / "zero.txt").symlink_to("/dev/zero")
    assert "is a device" in problems(text_file_job(tmp_path, "zero.txt"))[0]


def test_text_file_over_the_bound_is_refused_without_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    with big.open("wb") as f:
        f.truncate(MAX_INPUT_FILE_BYTES + 1)  # sparse: costs no disk
    started = time.process_time()
    found = problems(text_file_job(tmp_path, "big.txt"))
    assert time.process_time() - started < 2
    assert "more than the 64 MiB" in found[0]


@pytest.mark.parametrize("suffix", [".yaml", ".csv"])
def test_manifest_over_the_bound_or_a_device(tmp_path: Path, suffix: str) -> None:
    big = tmp_path / f"big{suffix}"
    with big.open("wb") as f:
        f.truncate(MAX_INPUT_FILE_BYTES + 1)
    assert "more than the 64 MiB" in problems(big)[0]
    link = tmp_path / f"zero{suffix}"
    link.symlink_to("/dev/zero")
    assert "is a device" in problems(link)[0]


def test_read_bounded_reads_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"abc")
    assert read_bounded(tmp_path / "a.txt") == b"abc"
    assert read_bounded(Path("bad\x00name")) == "a file name cannot hold a NUL character"


def billion_laughs(levels: int = 9, width: int = 10, size: int = 185_000) -> str:
    lines = [HEAD.split("\n")[0], 'l0: &l0 ["lol"' + ', "lol"' * (width - 1) + "]"]
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    lines.append(f"chapters:\n  - id: a\n    lines: *l{levels}")
    doc = "\n".join(lines) + "\n"
    pad = "# " + "x" * 998 + "\n"
    return doc + pad * max(0, (size - len(doc)) // len(pad))


def test_billion_laughs_fails_fast_with_little_memory(tmp_path: Path) -> None:
    bomb = tmp_path / "laughs.yaml"
    bomb.write_text(billion_laughs(), encoding="utf-8")
    assert 150_000 < bomb.stat().st_size < 200_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.process_time()
    found = problems(bomb)
    assert time.process_time() - started < 2
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 200 * 1024
    assert len(found) == 1
    assert found[0].startswith(f"{bomb}:")
    assert f"more than {MAX_YAML_NODES:,} values" in found[0]


def test_many_anchored_values_within_the_bound_still_load(tmp_path: Path) -> None:
    doc = "defaults: &b {voice_id: v}\nchapters:\n"
    doc += "".join(f"  - id: c{i}\n    <<: *b\n    text: line {i}\n" for i in range(300))
    (tmp_path / "ok.yaml").write_text(doc, encoding="utf-8")
    assert len(load_job(tmp_path / "ok.yaml").chapters) == 300


def test_yaml_alias_loop_is_refused(tmp_path: Path) -> None:
    loop = tmp_path / "loop.yaml"
    loop.write_text(HEAD + "  - id: a\n    lines: &x [hi, *x]\n", encoding="utf-8")
    started = time.process_time()
    found = problems(loop)
    assert time.process_time() - started < 2
    assert found == [f"{loop}:4: a YAML alias refers to the value that holds it (a loop); "
                     "write the values out"]


def test_line_holding_the_token_is_refused_with_its_line(tmp_path: Path) -> None:
    secret_file = tmp_path / "env.txt"
    secret_file.write_text(f"first paragraph\n\nCOZE_API_TOKEN={CANARY}\n", encoding="utf-8")
    job = text_file_job(tmp_path, "env.txt")
    found = problems(job, Redactor(CANARY).found_in)
    assert found == [f"{secret_file}:3: this text holds the API token: it would be sent and "
                     "written into the outputs; remove it (a text_file such as "
                     "/proc/self/environ names the wrong file)"]
    assert all(CANARY not in p for p in found)


def test_title_and_encoded_token_are_refused(tmp_path: Path) -> None:
    from urllib.parse import quote

    job = tmp_path / "job.yaml"
    job.write_text(HEAD + f"  - id: a\n    title: t {CANARY}\n    text: hi {quote(CANARY)}\n",
                   encoding="utf-8")
    found = problems(job, Redactor(CANARY).found_in)
    assert len(found) == 2 and "this title holds" in found[0] and "this text holds" in found[1]


def test_plan_json_never_prints_the_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "env.txt").write_text(f"X={CANARY}\n", encoding="utf-8")
    job = text_file_job(tmp_path, "env.txt")
    code = main(["plan", str(job), "--json", "--local"], environ={"COZE_API_TOKEN": CANARY})
    out, err = capsys.readouterr()
    assert code == 2
    assert CANARY not in out + err
    assert out == ""
