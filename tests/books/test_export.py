"""An imported book is a job file the manifest loader reads back as the same chapters."""

from __future__ import annotations

from pathlib import Path

import yaml

from books.test_epub import book3
from pipeline.books.epub import read_epub
from pipeline.books.export import job_yaml, manifest_dict
from pipeline.books.model import SourceBook, SourceChapter, SourceLine
from pipeline.books.text import parse_text_book
from pipeline.manifest import load_job


def test_epub_import_loads_back_as_the_same_chapters(tmp_path: Path) -> None:
    book = read_epub(book3(tmp_path))
    text = job_yaml(book, voice_id="local-en-female")
    assert text.startswith(f"# Imported from {book.file}: 5 chapters.\n")
    assert "#   1 x footnote or endnote text\n" in text
    path = tmp_path / "job.yaml"
    path.write_text(text, encoding="utf-8")
    job = load_job(path)
    assert [(c.id, c.title) for c in job.chapters] == [(c.id, c.title) for c in book.chapters]
    assert [[x.text for x in c.lines] for c in job.chapters] == [
        [x.text for x in c.lines] for c in book.chapters
    ]


def test_text_book_import_loads_back(tmp_path: Path) -> None:
    book = parse_text_book("第一回 开始\n正文一。\n第二回\n正文二。\n", "b.txt")
    path = tmp_path / "job.yaml"
    path.write_text(job_yaml(book, voice_id="v"), encoding="utf-8")
    assert [[x.text for x in c.lines] for c in load_job(path).chapters] == [
        ["第一回 开始", "正文一。"], ["第二回", "正文二。"],
    ]


def test_cue_fields_are_written_when_present() -> None:
    line = SourceLine("Hi.", "a.srt", 2, speaker="JOHN", start_s=1.0, end_s=2.5,
                      fields={"index": 1})
    book = SourceBook("a.srt", (SourceChapter("a", None, (line,), "a.srt", 2),))
    assert manifest_dict(book) == {
        "chapters": [{"id": "a", "lines": [
            {"id": "cue-0001", "speaker": "JOHN", "start": 1.0, "end": 2.5, "text": "Hi."}
        ]}]
    }
    assert yaml.safe_load(job_yaml(book)) == manifest_dict(book)
