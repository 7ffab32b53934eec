"""Books as sources: an EPUB or .txt given directly or named by a job file becomes exactly its
chapters, with nothing lost, its metadata as the job's ``book``, and clear FILE:LINE problems."""

from __future__ import annotations

from pathlib import Path

import pytest
from books.epubkit import PNG
from books.test_epub import book3, text_nodes

from pipeline import api
from pipeline.cli import main
from pipeline.errors import ManifestError
from pipeline.manifest import Job, Overrides, load_job
from pipeline.settings import Target

VOICE = Overrides(voice_id="local-en-female")
TOC = ["Copyright", "Part One", "Chapter 1", "Chapter 2", "About the Author"]
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16


def problems(path: Path, overrides: Overrides = VOICE) -> list[str]:
    with pytest.raises(ManifestError) as e:
        load_job(path, overrides)
    return [str(p) for p in e.value.problems]


def lost(path: Path, job: Job) -> list[str]:
    """Text nodes of the EPUB found neither in a line nor in a skipped piece."""
    said = "\n".join([x.text for c in job.chapters for x in c.lines] +
                     [s.text for s in job.skipped])
    return [n for n in text_nodes(path) if n not in said]


def test_epub_becomes_exactly_its_toc_chapters_with_no_text_lost(tmp_path: Path) -> None:
    path = book3(tmp_path)
    job = load_job(path, VOICE)
    assert [c.title for c in job.chapters] == TOC
    assert [c.id for c in job.chapters] == ["ch01", "ch02", "ch03", "ch04", "ch05"]
    assert [x.text for x in job.chapters[2].lines] == [
        "Chapter 1", "Alpha begins here.", "Beta after the image.", "Gamma with 漢字 ruby.",
    ]  # fmt: skip
    assert lost(path, job) == []
    line = job.chapters[2].lines[1]
    assert (line.file, line.lineno) == (f"{path}!OEBPS/body.xhtml", 4)
    assert {s.reason for s in job.skipped} >= {"footnote marker", "ruby reading", "page number"}
    assert job.book is not None
    assert (job.book.title, job.book.author, job.book.language) == ("A Test Book", "Ann Author",
                                                                    "en")
    assert job.book.cover is not None and job.book.cover.data == PNG
    plan = api.plan(job)
    found = api.lookup(plan, tmp_path / "cache", Target(local=True, base_url=""))
    data = api.plan_json(plan, 5.0, found)
    assert len(data["skipped"]) == len(job.skipped)
    assert data["skipped"][0] == {"file": f"{path}!OEBPS/coverpage.xhtml", "line": 4,
                                  "reason": "before the first table-of-contents entry",
                                  "text": "Cover words"}
    assert [c["text"] for c in data["chapters"][3]["chunks"]][:2] == [
        "Chapter 2", "Delta in chapter two, x2 kept."]


def test_a_job_file_names_an_epub_with_its_options_and_book_section(tmp_path: Path) -> None:
    book3(tmp_path)
    (tmp_path / "front.jpg").write_bytes(JPEG)
    job_file = tmp_path / "job.yaml"
    job_file.write_text(
        "manifest: book.epub\n"
        "exclude: [Copyright, -1]\n"
        "defaults: {voice_id: local-en-male}\n"
        "book: {title: My Title, narrator: Nat Reader, year: 2024, cover: front.jpg}\n",
        encoding="utf-8",
    )
    job = load_job(job_file)
    assert [c.title for c in job.chapters] == ["Part One", "Chapter 1", "Chapter 2"]
    assert job.book is not None
    assert (job.book.title, job.book.author, job.book.narrator, job.book.year) == (
        "My Title", "Ann Author", "Nat Reader", 2024)
    assert job.book.cover is not None
    assert (job.book.cover.media_type, job.book.cover.data) == ("image/jpeg", JPEG)
    left = {s.reason for s in job.skipped if "left out" in s.reason}
    assert left == {"chapter ch01 'Copyright' left out by exclude: 'Copyright'",
                    "chapter ch05 'About the Author' left out by exclude: -1"}
    assert {x.params.voice_id for c in job.chapters for x in c.lines} == {"local-en-male"}


ZH = """三国演义

第一回 宴桃园豪杰三结义 斩黄巾英雄首立功

滚滚长江东逝水，浪花淘尽英雄。
是非成败转头空。

话说天下大势，分久必合，合久必分。

第二回 张翼德怒鞭督邮 何国舅谋诛宦竖

且说董卓字仲颖，陇西临洮人也。
"""

EN = """THE BOOK

CHAPTER I.
It was the best of times,
it was the worst of times.

It was the age of wisdom.

CHAPTER II.

There were a king with a large jaw.
"""


def test_chinese_and_english_text_books_split_at_their_headings(tmp_path: Path) -> None:
    (tmp_path / "zh.txt").write_text(ZH, encoding="utf-8")
    (tmp_path / "en.txt").write_text(EN, encoding="utf-8")
    zh = load_job(tmp_path / "zh.txt", VOICE)
    assert [(c.title, [x.text for x in c.lines]) for c in zh.chapters] == [
        (None, ["三国演义"]),
        ("第一回 宴桃园豪杰三结义 斩黄巾英雄首立功", [
            "第一回 宴桃园豪杰三结义 斩黄巾英雄首立功",
            "滚滚长江东逝水，浪花淘尽英雄。是非成败转头空。",
            "话说天下大势，分久必合，合久必分。",
        ]),
        ("第二回 张翼德怒鞭督邮 何国舅谋诛宦竖",
         ["第二回 张翼德怒鞭督邮 何国舅谋诛宦竖", "且说董卓字仲颖，陇西临洮人也。"]),
    ]  # fmt: skip
    assert zh.chapters[1].lines[1].lineno == 5
    en = load_job(tmp_path / "en.txt", VOICE)
    assert [(c.title, [x.text for x in c.lines]) for c in en.chapters] == [
        (None, ["THE BOOK"]),
        ("CHAPTER I.", ["CHAPTER I.", "It was the best of times, it was the worst of times.",
                        "It was the age of wisdom."]),
        ("CHAPTER II.", ["CHAPTER II.", "There were a king with a large jaw."]),
    ]
    assert en.book is None and en.skipped == ()


def test_heading_regex_and_skipped_preface_from_the_job(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("Intro words.\n\nPart 1\n\nOne.\n\nPart 2\n\nTwo.\n")
    job_file = tmp_path / "job.yaml"
    job_file.write_text("manifest: b.txt\nheading: 'Part \\d+'\npreface: skip\n"
                        "defaults: {voice_id: v}\n")
    job = load_job(job_file)
    assert [[x.text for x in c.lines] for c in job.chapters] == [["Part 1", "One."],
                                                                  ["Part 2", "Two."]]
    assert [(s.text, s.reason, s.line) for s in job.skipped] == [
        ("Intro words.", "before the first chapter heading", 1)]


def test_a_book_with_no_chapters_says_what_was_left_out(tmp_path: Path) -> None:
    book3(tmp_path)
    job_file = tmp_path / "job.yaml"
    job_file.write_text("manifest: book.epub\ninclude: ['re:^Nothing']\n")
    (message,) = problems(job_file)
    assert message.startswith(f"{tmp_path / 'book.epub'}: no chapters: every text was left out (")
    assert "4 x chapter ch03 'Chapter 1' left out by not in include" in message
    (tmp_path / "toc.txt").write_text("第一回\n第二回\n")
    (message,) = problems(tmp_path / "toc.txt")
    assert message.endswith("no chapters: every text was left out "
                            "(2 x chapter heading with no text (a table of contents?))")


def test_bad_book_settings_are_problems_at_their_lines(tmp_path: Path) -> None:
    book3(tmp_path)
    (tmp_path / "c.gif").write_bytes(b"GIF89a")
    (tmp_path / "d").mkdir()
    job_file = tmp_path / "job.yaml"
    job_file.write_text(
        "manifest: book.epub\n"          # 1
        "heading: 'x'\n"                 # 2
        "include: [0, 're:(']\n"         # 3
        "preface: maybe\n"               # 4
        "book:\n"                        # 5
        "  cover: c.gif\n"               # 6
        "  year: soon\n"                 # 7
        "  colour: red\n",               # 8
    )  # fmt: skip
    shown = f"{job_file}"
    assert problems(job_file) == [
        f"{shown}:2: heading: applies to a .txt book only",
        f"{shown}:3: include: want a chapter title (glob), re:REGEX or a 1-based position "
        "(negative from the end), not int 0",
        f"{shown}:3: include: bad regex 're:(': missing ), unterminated subpattern at position 0",
        f"{shown}:4: preface must be chapter or skip, not str 'maybe'",
        f"{shown}:6: book.cover c.gif: not a JPEG or PNG image ({tmp_path / 'c.gif'})",
        f"{shown}:7: book.year must be a year such as 1851, not str 'soon'",
        f"{shown}:8: colour: unknown key; allowed: title, author, narrator, year, description, "
        "language, cover",
    ]
    job_file.write_text("book: {cover: d}\ninclude: [1]\nchapters: [{id: a, text: x}]\n"
                        "defaults: {voice_id: v}\n")
    assert problems(job_file) == [
        f"{shown}:1: book.cover d: not a regular file ({tmp_path / 'd'})",
        f"{shown}:2: include: applies to a book named by 'manifest' (a .epub or .txt file)",
    ]


def test_import_writes_an_editable_job_and_never_overwrites_unasked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = book3(tmp_path)
    out = tmp_path / "job.yaml"
    assert main(["import", str(path), "-o", str(out), "--voice", "local-en-female",
                 "--exclude", "1"]) == 0
    assert capsys.readouterr().out == (
        f"{out}: 4 chapters, 12 lines, 19 pieces not spoken\n"
        f"{tmp_path / 'job.cover.png'}: the book's cover\n"
    )
    job = load_job(out)
    assert [c.title for c in job.chapters] == TOC[1:]
    assert job.book is not None and job.book.cover is not None
    assert job.book.cover.data == PNG and job.book.author == "Ann Author"
    before = out.read_bytes()
    assert main(["import", str(path), "-o", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"tts-pipeline: error: {out} exists: pass --force to overwrite it\n")
    assert out.read_bytes() == before
    assert main(["import", str(path), "-o", str(out), "--force"]) == 0
    assert [c.title for c in load_job(out, VOICE).chapters] == TOC


def test_plan_of_a_book_shows_titles_and_what_is_not_spoken(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = book3(tmp_path)
    assert main(["plan", str(path), "--voice", "v", "--local", "--cache-dir",
                 str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2] == "ch03: 4 lines, 4 chunks, 67 characters, mp3 24000 Hz: Chapter 1"
    assert "not spoken: 17 pieces, 127 characters:" in out
    assert "  4 x ruby reading" in out
    assert out[-1] == "  ... and 7 more (plan --json lists them all)"


def test_a_cover_over_the_size_limit_or_through_a_dangling_link_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.manifest.readers import booksection

    monkeypatch.setattr(booksection, "MAX_COVER_BYTES", 10)
    (tmp_path / "big.png").write_bytes(PNG)
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    job_file = tmp_path / "job.yaml"
    job_file.write_text("chapters: [{id: a, text: x}]\ndefaults: {voice_id: v}\n"
                        "book: {cover: big.png}\n")
    assert problems(job_file) == [f"{job_file}:3: book.cover big.png: {len(PNG)} bytes; a cover "
                                  f"may have at most 10 ({tmp_path / 'big.png'})"]
    job_file.write_text("chapters: [{id: a, text: x}]\ndefaults: {voice_id: v}\n"
                        "book: {cover: gone.jpg}\n")
    assert problems(job_file) == [
        f"{job_file}:3: book.cover gone.jpg: no such file ({tmp_path / 'gone.jpg'})"]


def test_with_local_a_line_takes_its_voice_language_for_normalize(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job_file = tmp_path / "job.yaml"
    job_file.write_text("normalize: true\ndefaults: {voice_id: local-en-female}\n"
                        "chapters: [{id: a, text: 'Room 12.'}]\n")
    assert main(["plan", str(job_file), "--local", "--json", "--cache-dir",
                 str(tmp_path / "c")]) == 0
    assert '"text": "Room twelve."' in capsys.readouterr().out
    assert main(["plan", str(job_file), "--cache-dir", str(tmp_path / "c")]) == 2
    assert capsys.readouterr().err.startswith(
        f"{job_file}:3: normalize is on but it has no language")
