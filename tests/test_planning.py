"""Planning: a job's lines cut into chunks, in order, with their pauses and totals."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import make_plan, write_job

from pipeline.errors import ConfigError, ManifestError
from pipeline.manifest import load_job
from pipeline.planning import plan_job


def test_chunks_keep_manifest_order_and_line_positions(tmp_path: Path) -> None:
    long_line = "One sentence here. " * 80  # ~1.5 kB: two chunks
    job = write_job(
        tmp_path, {"a": ["first.", long_line.strip()], "b": ["only."]}, defaults={"pause_ms": 250}
    )
    plan = make_plan(job)
    chunks = list(plan.chunks())
    assert [(c.chapter_id, c.line_id, c.line_index, c.index) for c in chunks] == [
        ("a", "1", 0, 0), ("a", "2", 1, 0), ("a", "2", 1, 1), ("b", "1", 0, 0),
    ]  # fmt: skip
    assert [c.last_in_line for c in chunks] == [True, False, True, True]
    # The line's pause comes after its last chunk only.
    assert [c.pause_after_ms for c in chunks] == [250, 0, 250, 250]
    assert " ".join(c.text for c in chunks[1:3]) == long_line.strip()


def test_totals(tmp_path: Path) -> None:
    plan = make_plan(write_job(tmp_path, {"a": ["héllo.", "two"], "b": ["三个字"]}))
    assert plan.lines == 3 and plan.chunk_count == 3
    assert plan.characters == 6 + 3 + 3
    assert plan.utf8_bytes == 7 + 3 + 9
    assert [c.chapter.id for c in plan.chapters] == ["a", "b"]
    assert plan.chapters[0].response_format == "wav" and plan.chapters[0].sample_rate == 16000


def test_a_smaller_chunk_cap_gives_more_chunks_within_it(tmp_path: Path) -> None:
    text = "Short one. Another short one. And a third. " * 5
    job = write_job(tmp_path, {"a": [text.strip()]})
    plan = make_plan(job, max_chunk_bytes=40)
    assert plan.chunk_count > 5
    assert all(c.utf8_bytes <= 40 for c in plan.chunks())
    assert plan.max_chunk_bytes == 40


def test_a_request_carries_the_lines_params(tmp_path: Path) -> None:
    job = write_job(tmp_path, {"a": ["hi."]}, defaults={"speed": 1.5, "emotion": "happy"})
    chunk = next(make_plan(job).chunks())
    body = chunk.request().body()
    assert body["input"] == "hi." and body["speed"] == 1.5 and body["emotion"] == "happy"
    assert body["voice_id"] == "local-tone-1" and body["response_format"] == "wav"


@pytest.mark.parametrize("cap", [0, 1025])
def test_a_chunk_cap_out_of_range_is_refused(tmp_path: Path, cap: int) -> None:
    with pytest.raises(ConfigError, match="max_chunk_bytes"):
        plan_job(load_job(write_job(tmp_path, {"a": ["hi."]})), cap)


def test_a_line_that_cannot_be_cut_names_its_file_and_line(tmp_path: Path) -> None:
    job = write_job(tmp_path, {"a": ["fine.", "四字成语"]})
    with pytest.raises(ManifestError) as caught:
        make_plan(job, max_chunk_bytes=2)  # a CJK character is 3 bytes: no cut fits
    problems = caught.value.problems
    assert problems and all(p.file == str(job) for p in problems)
    assert any("line 2" in p.message for p in problems)
