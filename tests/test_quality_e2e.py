"""Issue 17 end to end: the runner, its quality gate and the local server's quality faults.

Each run is a tone-engine job against the local server injecting one quality fault kind at
5 %. The server's counters say how many faults it injected and how many requests it got; the
finished chapters are decoded and measured again (``check_output_dir``, cut at the chunks of
each chapter's chunk map) to show that no faulty chunk is left in them but the flagged ones.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import RATE, TOKEN, VOICE, cli_env, make_plan, read_report, run_cli, run_plan

from pipeline.checkdir import check_output_dir
from pipeline.junit import junit_xml
from pipeline.limits import RateLimit
from pipeline.localserver import LocalServer
from pipeline.localserver.config import QUALITY_FAULT_KINDS
from pipeline.manifest import load_job
from pipeline.quality import QualityConfig
from pipeline.runner import OutputOptions
from pipeline.summary import markdown_summary

pytestmark = pytest.mark.anyio

MakeServer = Callable[..., LocalServer]
WORDS = (
    "the keeper climbed old stairs before evening came over a quiet harbour while boats "
    "rocked slowly and children counted gulls along the grey stone wall near the market"
).split()


def sentences(count: int, seed: int) -> list[str]:
    """``count`` distinct sentences of 8 to 20 words."""
    rng = random.Random(seed)
    return [
        f"{i}: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20))) + "."
        for i in range(count)
    ]


def write_book(directory: Path, chapters: int, lines: int, quality: object = None) -> Path:
    body: dict[str, Any] = {
        "defaults": {"voice_id": VOICE, "response_format": "wav", "sample_rate": RATE},
        "output": {"subtitles": ["srt"]},  # readable cues: check must not judge them
        "chapters": [
            {"id": f"ch{c:02d}", "lines": [{"text": t} for t in sentences(lines, c)]}
            for c in range(chapters)
        ],
    }
    if quality is not None:
        body["quality"] = quality
    path = directory / "book.yaml"
    path.write_text(yaml.safe_dump(body, allow_unicode=True, width=10**6), encoding="utf-8")
    return path


def file_lines(path: Path) -> dict[str, int]:
    """Each line's text -> its line number in the job file."""
    found = {}
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if text.strip().startswith("- text:"):
            found[yaml.safe_load(text.strip()[2:])["text"]] = number
    return found


async def run_book(
    server: LocalServer, tmp_path: Path, chapters: int, lines: int, **config: Any
) -> tuple[dict[str, Any], Path, Path]:
    job = write_book(tmp_path, chapters, lines)
    plan = make_plan(job)
    out = tmp_path / "out"
    quality = config.pop("quality", QualityConfig())
    config.setdefault("concurrency", 8)
    await run_plan(
        plan,
        server,
        out,
        quality=quality,
        rate=RateLimit(qps=2000.0),
        output=OutputOptions(subtitles=("srt",)),
        **config,
    )
    return read_report(out), out, job


def report_line_id(job: Path) -> str:
    [chapter] = make_plan(job).chapters
    return chapter.chapter.lines[0].id


def flags_of(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for c in report["chapters"] for f in c.get("quality_flags", [])]


def check_faulty_left(out: Path, report: dict[str, Any], job: Path) -> None:
    """Measured again, the chapters hold no faulty chunk but the flagged ones."""
    flagged = {(f["file_line"]) for f in flags_of(report)}
    lines = file_lines(job)
    checked = check_output_dir(out)
    # Cut at the chunk maps (a segment per chunk), each finding names its chunk's line.
    assert checked.segments == report["totals"]["chunks"]
    assert all(f.file_line == lines[f.text or ""] for f in checked.findings)
    left = [f for f in checked.findings if f.file_line not in flagged]
    assert left == [], [f.to_json() for f in left]
    for flag in flags_of(report):
        assert flag["file"].endswith("book.yaml") and flag["file_line"] in lines.values()
        assert flag["rules"] and flag["measures"]["measures"]["duration_s"] >= 0


async def fault_run(
    make_server: MakeServer, tmp_path: Path, kind: str, chapters: int, lines: int
) -> dict[str, Any]:
    server = make_server(fault_rate=0.05, fault_kinds=(kind,), seed=17)
    report, out, job = await run_book(server, tmp_path, chapters, lines)
    faults = sum(server.stats.faults.values())
    chunks = report["totals"]["chunks"]
    extra = server.stats.requests - chunks
    assert report["status"] == "ok", report
    assert faults > 0
    assert extra <= 1.1 * faults, (kind, extra, faults, report["quality"])
    assert report["quality"]["requests"] == extra
    check_faulty_left(out, report, job)
    figures = {"kind": kind, "chunks": chunks, "faults": faults, "extra_requests": extra}
    figures.update({"flagged": len(flags_of(report)), "late": report["quality"]["late"]})
    print(json.dumps(figures))
    return report


@pytest.mark.parametrize("kind", QUALITY_FAULT_KINDS)
async def test_a_quality_fault_at_5_percent_is_fixed_or_flagged(
    make_server: MakeServer, tmp_path: Path, kind: str
) -> None:
    await fault_run(make_server, tmp_path, kind, chapters=6, lines=25)


@pytest.mark.slow
@pytest.mark.parametrize("kind", QUALITY_FAULT_KINDS)
async def test_500_chunks_with_a_quality_fault_at_5_percent(
    make_server: MakeServer, tmp_path: Path, kind: str
) -> None:
    await fault_run(make_server, tmp_path, kind, chapters=20, lines=25)


async def test_without_faults_nothing_is_flagged_or_asked_twice(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server()
    report, out, job = await run_book(server, tmp_path, chapters=6, lines=25)
    assert report["status"] == "ok"
    assert flags_of(report) == []
    assert server.stats.requests == report["totals"]["chunks"] == 150
    assert report["quality"] == {
        "enabled": True, "rejected": 0, "requests": 0, "late": 0, "flagged": 0
    }
    assert check_output_dir(out).findings == []


async def test_a_chunk_that_stays_bad_is_flagged_with_its_file_line(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server()
    # The only chunk's request and its one retry are silent.
    server.queue_faults(["silent", "silent"])
    report, out, job = await run_book(server, tmp_path, chapters=1, lines=1)
    assert report["status"] == "ok"
    [flag] = flags_of(report)
    assert flag["file_line"] == file_lines(job)[sentences(1, 0)[0]]
    assert flag["chapter"] == "ch00" and flag["line"] == report_line_id(job)
    assert flag["rules"] == ["silent"] and flag["requests"] == 2
    assert server.stats.requests == 2
    # The kept answer is not cached as good: a second run asks again, and is fixed.
    again, _, _ = await run_book(server, tmp_path, chapters=1, lines=1)
    assert server.stats.requests == 3 and flags_of(again) == []
    # The flag reaches JUnit (a failure under its chapter) and the summary.
    xml = junit_xml(report)
    assert xml.count("<failure") == 1 and "silent" in xml
    assert "silent" in markdown_summary(report)


async def test_strict_fails_the_chapter_of_a_flagged_chunk(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server()
    server.queue_faults(["clipped", "clipped"])
    strict = QualityConfig(strict=True)
    report, _, _ = await run_book(server, tmp_path, chapters=1, lines=1, quality=strict)
    assert report["status"] == "failed"
    [chapter] = report["chapters"]
    assert chapter["error"]["code"] == -8 and "clipped" in chapter["error"]["message"]


async def test_a_chunk_accepted_while_learning_is_asked_again_when_found_bad(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server()
    # The first answer is cut to half its text: nothing is learnt yet, the prior takes it;
    # once the voice's pace is known it is found short and asked again.
    server.queue_faults(["truncated"])
    report, out, job = await run_book(server, tmp_path, chapters=1, lines=12)
    assert report["status"] == "ok"
    assert report["quality"]["late"] == 1 and report["quality"]["requests"] == 1
    assert server.stats.requests == 13
    assert flags_of(report) == []
    check_faulty_left(out, report, job)
    # The good answer replaced the bad one in the cache: a second run sends nothing.
    again, out, job = await run_book(server, tmp_path, chapters=1, lines=12)
    assert server.stats.requests == 13 and again["totals"]["cache_hits"] == 12
    check_faulty_left(out, again, job)


async def first_answer_found_bad_late(
    make_server: MakeServer, tmp_path: Path, edit: Callable[[list[Any]], None]
) -> tuple[Path, LocalServer, Path, dict[str, Any]]:
    """A 2-chapter book (its chapters changed by ``edit``) run one request at a time, the first
    answer cut short: accepted while the voice's pace is unknown, then found bad late."""
    job = write_book(tmp_path, 2, 12)
    body = yaml.safe_load(job.read_text(encoding="utf-8"))
    edit(body["chapters"])
    job.write_text(yaml.safe_dump(body, allow_unicode=True, width=10**6), encoding="utf-8")
    server = make_server()
    server.queue_faults(["truncated"])
    out = tmp_path / "out"
    await run_plan(make_plan(job), server, out, quality=QualityConfig(), concurrency=1)
    return job, server, out, read_report(out)


async def test_a_chunk_found_bad_after_its_chapter_was_joined_is_joined_again(
    make_server: MakeServer, tmp_path: Path
) -> None:
    # ch00 (2 lines, the first cut short) is joined before the voice's pace is learnt
    # (5 chunks), in ch01; then its first chunk is found short and asked again.
    def two_lines(chapters: list[Any]) -> None:
        chapters[0]["lines"] = chapters[0]["lines"][:2]

    job, server, out, report = await first_answer_found_bad_late(make_server, tmp_path, two_lines)
    assert report["status"] == "ok" and report["quality"]["late"] == 1
    assert server.stats.requests == 15 and flags_of(report) == []
    # The chapter joined again holds the good answer: as a run without the fault writes it.
    clean = tmp_path / "clean"
    quality = QualityConfig()
    await run_plan(make_plan(job), make_server(), clean, quality=quality, concurrency=1)
    assert (out / "ch00.wav").read_bytes() == (clean / "ch00.wav").read_bytes()
    # A second run keeps it: nothing is asked, and the file is still the good one.
    await run_plan(make_plan(job), server, out, quality=quality, concurrency=1)
    assert server.stats.requests == 15
    assert (out / "ch00.wav").read_bytes() == (clean / "ch00.wav").read_bytes()


async def test_a_chunk_found_bad_late_is_asked_again_for_every_chunk_it_served(
    make_server: MakeServer, tmp_path: Path
) -> None:
    # ch01 opens with ch00's first line: one request serves both (single flight). Both
    # chapters must get the good answer, not only the chunk the request was made for.
    def shared_first_line(chapters: list[Any]) -> None:
        chapters[1]["lines"][0] = chapters[0]["lines"][0]

    job, server, out, report = await first_answer_found_bad_late(
        make_server, tmp_path, shared_first_line
    )
    assert report["status"] == "ok" and report["quality"]["late"] == 1
    assert server.stats.requests == 24 and flags_of(report) == []
    clean = tmp_path / "clean"
    await run_plan(make_plan(job), make_server(), clean, quality=QualityConfig(), concurrency=1)
    for name in ("ch00.wav", "ch01.wav"):
        assert (out / name).read_bytes() == (clean / name).read_bytes(), name


async def test_quality_off_takes_every_answer(make_server: MakeServer, tmp_path: Path) -> None:
    server = make_server()
    server.queue_faults(["silent"])
    report, _, _ = await run_book(
        server, tmp_path, chapters=1, lines=4, quality=QualityConfig(enabled=False)
    )
    assert server.stats.requests == 4
    assert report["quality"]["enabled"] is False and flags_of(report) == []


# --- the command line ----------------------------------------------------------------------


def test_cli_flag_reaches_jsonl_junit_and_strict_fails_the_chapter(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server()
    server.queue_faults(["padded", "padded"])
    job = write_book(tmp_path, 1, 1)
    out, junit = tmp_path / "out", tmp_path / "junit.xml"
    result = run_cli(
        "run", job, "-o", out, "--base-url", server.base_url, "--progress", "jsonl",
        "--junit", junit, "--quality-strict", env=cli_env(COZE_API_TOKEN=TOKEN),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    [flag] = [e for e in events if e["event"] == "quality_flag"]
    assert flag["rules"] == ["gap"] and flag["file_line"] == file_lines(job)[sentences(1, 0)[0]]
    assert "<failure" in junit.read_text(encoding="utf-8")
    assert read_report(out)["chapters"][0]["error"]["code"] == -8
    # Not strict: the chapter is written, the flag is reported, the run is ok.
    server.queue_faults(["padded", "padded"])
    result = run_cli(
        "run", job, "-o", tmp_path / "lenient", "--base-url", server.base_url,
        env=cli_env(COZE_API_TOKEN=TOKEN),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "quality: gap at" in result.stderr
    # check finds the flagged chunk in the finished chapter, offline: exit 1.
    checked = run_cli("check", tmp_path / "lenient", "--json")
    assert checked.returncode == 1, checked.stderr
    findings = json.loads(checked.stdout)["findings"]
    assert [f["rules"] for f in findings] == [["gap"]]
    # The chunk map names the chunk's line, as the flag did.
    assert findings[0]["file_line"] == flag["file_line"]
    plain = run_cli("check", tmp_path / "lenient")
    assert f"book.yaml:{flag['file_line']})" in plain.stdout, plain.stdout


def test_cli_check_exit_status(make_server: MakeServer, tmp_path: Path) -> None:
    server = make_server()
    job = write_book(tmp_path, 1, 6)
    out = tmp_path / "out"
    run = run_cli("run", job, "-o", out, "--base-url", server.base_url,
                  env=cli_env(COZE_API_TOKEN=TOKEN))
    assert run.returncode == 0, run.stderr
    clean = run_cli("check", out)
    assert clean.returncode == 0 and clean.stdout == "", clean.stderr
    assert "0 flagged in 1 files, 6 segments" in clean.stderr
    missing = run_cli("check", tmp_path / "nowhere")
    assert missing.returncode == 2 and "not a folder" in missing.stderr


def test_the_job_quality_key(tmp_path: Path) -> None:
    job = write_book(tmp_path, 1, 2, quality="off")
    assert load_job(job).quality == QualityConfig(enabled=False)
    job = write_book(tmp_path, 1, 2, quality={"retries": 2, "strict": True})
    assert load_job(job).quality == QualityConfig(retries=2, strict=True)
    assert load_job(write_book(tmp_path, 1, 2)).quality is None
    job = write_book(tmp_path, 1, 2, quality={"retries": 9})
    result = run_cli("validate", job)
    assert result.returncode == 2
    line = job.read_text(encoding="utf-8").splitlines().index("  retries: 9") + 1
    assert f"book.yaml:{line}: quality.retries must be a whole number from 0 to 5" in result.stderr


def test_serve_local_fault_kinds_must_be_known() -> None:
    result = run_cli("serve-local", "--fault-kinds", "silent,loud")
    assert result.returncode == 2 and "unknown fault kind(s) loud" in result.stderr
