"""The reader registry: a new source format is one module and one registry line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.errors import ManifestError
from pipeline.manifest import (
    READERS,
    Layer,
    Overrides,
    ReadContext,
    Source,
    SourceChapter,
    SourceLine,
    load_job,
)


def read_lines(path: Path, context: ReadContext) -> Source:
    """A toy format: `chapter-id | speaker | text` per line; `#` starts a comment."""

    def chapters() -> Iterator[SourceChapter]:
        for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not raw.strip() or raw.startswith("#"):
                continue
            parts = [p.strip() for p in raw.split("|")]
            if len(parts) != 3:
                context.problem(context.display, number, "write chapter | speaker | text")
                continue
            cid, speaker, text = parts
            line = SourceLine(text, context.display, number, speaker=speaker)
            yield SourceChapter(cid, None, context.display, number, (line,), context.outer, True)

    return Source(chapters())


@pytest.fixture
def lines_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(READERS, ".lines", read_lines)  # the one registry line


def test_a_registered_reader_makes_chapters_like_any_other(
    tmp_path: Path, lines_format: None
) -> None:
    path = tmp_path / "book.lines"
    path.write_text("# a play\nact1 | Ann | Hello.\nact1 | Bob | Hi.\nact2 | Ann | Bye.\n")
    job = load_job(path, Overrides(voice_id="v1"))
    assert [c.id for c in job.chapters] == ["act1", "act2"]
    assert [(ln.id, ln.text, ln.lineno) for ln in job.chapters[0].lines] == [
        ("1", "Hello.", 2),
        ("2", "Hi.", 3),
    ]
    assert job.chapters[1].lines[0].params.voice_id == "v1"


def test_a_registered_reader_reports_through_the_same_problems(
    tmp_path: Path, lines_format: None
) -> None:
    path = tmp_path / "bad.lines"
    path.write_text("act1 | only two\n")
    with pytest.raises(ManifestError) as e:
        load_job(path)
    assert [(p.line, p.message) for p in e.value.problems] == [
        (1, "write chapter | speaker | text")
    ]


def test_a_job_file_can_name_a_manifest_of_a_registered_format(
    tmp_path: Path, lines_format: None
) -> None:
    (tmp_path / "play.lines").write_text("act1 | Ann | Hello.\n")
    job_file = tmp_path / "job.yaml"
    job_file.write_text("manifest: play.lines\ndefaults: {voice_id: v2, speed: 1.5}\n")
    job = load_job(job_file)
    line = job.chapters[0].lines[0]
    assert (line.params.voice_id, line.params.speed, line.file) == (
        "v2",
        1.5,
        str(tmp_path / "play.lines"),
    )


def test_unknown_suffix_names_every_registered_one(tmp_path: Path, lines_format: None) -> None:
    path = tmp_path / "book.txtx"
    path.write_text("x")
    with pytest.raises(ManifestError) as e:
        load_job(path)
    assert e.value.problems[0].message == (
        "unknown file type: a job file or manifest ends in .yaml, .yml, .csv, .srt, .vtt, .ass, "
        ".ssa, .epub, .txt or .lines"
    )


def test_layers_put_the_inner_values_on_top() -> None:
    outer = Layer({"voice_id": "a", "speed": 1.0}, frozenset({"emotion"}))
    inner = Layer({"speed": 2.0}, frozenset({"pause_ms"}))
    both = outer.then(inner)
    assert dict(both.values) == {"voice_id": "a", "speed": 2.0}
    assert both.invalid == {"emotion", "pause_ms"}
    assert outer.then(Layer({})) is outer
