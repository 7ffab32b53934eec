"""Plain-text books split at heading lines, with the manifest's paragraph rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.books.text import BUILTIN_HEADINGS, TextBookOptions, is_heading, read_text_book
from pipeline.errors import ManifestError

ZH = """三国演义

　　滚滚长江东逝水，浪花淘尽英雄。

第一回　宴桃园豪杰三结义　斩黄巾英雄首立功

　　话说天下大势，分久必合，
合久必分。

　　周末七国分争，并入于秦。
第二回 张翼德怒鞭督邮
　　且说董卓字仲颖。
第3回
　　第三回的正文。
"""

EN = """The Preface

It was written long ago.

CHAPTER I.

It was a dark night,
and the wind blew.

Then it stopped.

CHAPTER II. The Morning

Morning came.
"""


def lines(path: Path, options: TextBookOptions | None = None) -> list[list[tuple[int | None, str]]]:
    book = read_text_book(path, options)
    return [[(x.line, x.text) for x in c.lines] for c in book.chapters]


def test_chinese_book_splits_at_each_hui(tmp_path: Path) -> None:
    path = tmp_path / "sanguo.txt"
    path.write_text(ZH, encoding="utf-8")
    book = read_text_book(path)
    assert [c.title for c in book.chapters] == [
        None,
        "第一回　宴桃园豪杰三结义　斩黄巾英雄首立功",
        "第二回 张翼德怒鞭督邮",
        "第3回",
    ]
    assert [c.id for c in book.chapters] == ["ch01", "ch02", "ch03", "ch04"]
    assert lines(path) == [
        [(1, "三国演义"), (3, "滚滚长江东逝水，浪花淘尽英雄。")],
        [(5, "第一回　宴桃园豪杰三结义　斩黄巾英雄首立功"),
         (7, "话说天下大势，分久必合，合久必分。"), (10, "周末七国分争，并入于秦。")],
        [(11, "第二回 张翼德怒鞭督邮"), (12, "且说董卓字仲颖。")],
        [(13, "第3回"), (14, "第三回的正文。")],
    ]
    assert book.chapters[1].lines[0].heading and not book.chapters[1].lines[1].heading


def test_english_book_with_roman_chapter_headings(tmp_path: Path) -> None:
    path = tmp_path / "book.txt"
    path.write_text(EN, encoding="utf-8")
    assert lines(path) == [
        [(1, "The Preface"), (3, "It was written long ago.")],
        [
            (5, "CHAPTER I."),
            (7, "It was a dark night, and the wind blew."),
            (10, "Then it stopped."),
        ],
        [(12, "CHAPTER II. The Morning"), (14, "Morning came.")],
    ]
    skip = read_text_book(path, TextBookOptions(preface="skip"))
    assert [c.title for c in skip.chapters] == ["CHAPTER I.", "CHAPTER II. The Morning"]
    assert [(s.line, s.text, s.reason) for s in skip.skipped] == [
        (1, "The Preface", "before the first chapter heading"),
        (3, "It was written long ago.", "before the first chapter heading"),
    ]


@pytest.mark.parametrize(
    ("line", "heading"),
    [
        ("第十二章 重逢", True),
        ("第１２章", True),
        ("第三章　旅立ち", True),
        ("第一百二十回", True),
        ("第一章讲的是他如何离开家乡，又如何回来。", False),
        ("Chapter 7", True),
        ("chapter twenty-one: The End", True),
        ("CHAPTER XIV.", True),
        ("Chapter 3—The Fall", True),
        ("XII.", True),
        ("IV", True),
        ("In chapter 3 we saw", False),
        ("Chapters are long", False),
        ("I am here.", False),
        ("IIII", False),
        ("MIX", False),
        ("D.", False),
        ("CXLII.", True),
        ("", False),
    ],
)
def test_builtin_heading_rules(line: str, heading: bool) -> None:
    assert is_heading(line, BUILTIN_HEADINGS) is heading


def test_user_regex_and_table_of_contents_lines(tmp_path: Path) -> None:
    path = tmp_path / "toc.txt"
    path.write_text("## One\n## Two\n\n## One\nbody one\n## Two\nbody two\n", encoding="utf-8")
    book = read_text_book(path, TextBookOptions(heading=r"## .+"))
    assert [(c.title, [x.text for x in c.lines]) for c in book.chapters] == [
        ("## One", ["## One", "body one"]),
        ("## Two", ["## Two", "body two"]),
    ]
    assert [(s.line, s.text) for s in book.skipped] == [(1, "## One"), (2, "## Two")]


def test_no_heading_is_one_chapter_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "plain.txt"
    path.write_text("just\ntext\n", encoding="utf-8")
    book = read_text_book(path)
    assert [[x.text for x in c.lines] for c in book.chapters] == [["just", "text"]]
    assert book.notes == ("no chapter heading found: the whole text is one chapter",)


def test_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "gbk.txt"
    bad.write_bytes("第一回\n正文\n".encode("gb18030"))
    with pytest.raises(ManifestError, match=r"gbk\.txt:1: not utf-8 \(byte 0\)"):
        read_text_book(bad)
    book = read_text_book(bad, TextBookOptions(encoding="gb18030"))
    assert [c.title for c in book.chapters] == ["第一回"]
    with pytest.raises(ManifestError, match=r"bad heading regex '\('"):
        read_text_book(bad, TextBookOptions(heading="(", encoding="gb18030"))
    with pytest.raises(ManifestError, match="refused: 12 bytes"):
        read_text_book(bad, TextBookOptions(max_bytes=5))
