"""EPUB chapters follow the TOC, and every text node ends in a chapter or a skipped note."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from lxml import etree

from books.epubkit import PNG, nav, nav_point, ncx, opf, write_epub, xhtml
from pipeline.books.epub import EpubOptions, read_epub
from pipeline.books.epub_load import EpubLimits
from pipeline.books.model import SourceBook
from pipeline.errors import ManifestError

XHTML = "application/xhtml+xml"

COVER_PAGE = xhtml('<div><img src="cover.png" alt="cover"/></div><p>Cover words</p>')
FRONT = xhtml("<h1>Copyright</h1><p>All rights reserved.</p>")
PART = xhtml('<h1>Part One</h1><p>The part opens here.</p>')
# Two chapters in one file, an image between paragraphs, ruby, footnotes, a page number.
BODY = xhtml(
    '<h2 id="c1">Chapter 1</h2>'
    '<p>Alpha begins<a epub:type="noteref" href="#n1">1</a> here.</p>'
    '<p><img src="pic.png" alt="a picture"/></p>'
    "<p>Beta after the image<sup>[2]</sup>.</p>"
    '<span epub:type="pagebreak" id="p7" title="7">7</span>'
    "<p>Gamma with <ruby>漢<rp>(</rp><rt>かん</rt><rp>)</rp>字<rt>じ</rt></ruby> ruby.</p>"
    '<aside epub:type="footnote" id="n1"><p>Footnote body text.</p></aside>'
    '<h2 id="c2">Chapter 2</h2>'
    "<p>Delta in chapter two, x<sup>2</sup> kept.</p>"
    '<p>Epsilon<a href="notes.xhtml#e3">[3]</a> ends.</p>'
)
TAIL = xhtml("<p>Zeta continues chapter two in another file.</p>")
BACK = xhtml("<h1>About the Author</h1><p>She writes.</p>")
NOTES = xhtml("<p>Endnote file, not linear.</p>")

NAV_ITEMS = (
    '<li><a href="front.xhtml">Copyright</a></li>'
    '<li><a href="part.xhtml">Part One</a><ol>'
    '<li><a href="body.xhtml#c1">Chapter 1</a></li>'
    '<li><a href="body.xhtml#c2">Chapter 2</a></li></ol></li>'
    '<li><a href="back.xhtml">About the Author</a></li>'
)
MANIFEST = [
    ("nav", "nav.xhtml", XHTML, "nav"),
    ("cover-img", "cover.png", "image/png", "cover-image"),
    ("pic", "pic.png", "image/png", ""),
    ("coverpage", "coverpage.xhtml", XHTML, ""),
    ("front", "front.xhtml", XHTML, ""),
    ("part", "part.xhtml", XHTML, ""),
    ("body", "body.xhtml", XHTML, ""),
    ("tail", "tail.xhtml", XHTML, ""),
    ("back", "back.xhtml", XHTML, ""),
    ("notes", "notes.xhtml", XHTML, ""),
]
SPINE = ["coverpage", "nav", "front", "part", "body", "tail", "back", ("notes", "no")]


def book3(tmp_path: Path) -> Path:
    return write_epub(
        tmp_path / "book.epub",
        {
            "content.opf": opf(MANIFEST, SPINE),
            "nav.xhtml": nav(NAV_ITEMS),
            "cover.png": PNG,
            "pic.png": PNG,
            "coverpage.xhtml": COVER_PAGE,
            "front.xhtml": FRONT,
            "part.xhtml": PART,
            "body.xhtml": BODY,
            "tail.xhtml": TAIL,
            "back.xhtml": BACK,
            "notes.xhtml": NOTES,
        },
    )


def texts(book: SourceBook) -> dict[str | None, list[str]]:
    return {c.title: [x.text for x in c.lines] for c in book.chapters}


def text_nodes(path: Path, skip: tuple[str, ...] = ()) -> list[str]:
    """Every text node of every body, read independently of the parser under test."""
    nodes: list[str] = []
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            if name.endswith(".xhtml") and name not in skip:
                body = etree.fromstring(zf.read(name)).find("{http://www.w3.org/1999/xhtml}body")
                for el in body.iter():
                    nodes += [el.text or "", el.tail or ""] if el is not body else [el.text or ""]
    return [" ".join(n.split()) for n in nodes if n.strip()]


def lost(path: Path, book: SourceBook, skip: tuple[str, ...] = ()) -> list[str]:
    """Text nodes found neither in a chapter nor in a skipped note."""
    pieces = [x.text for c in book.chapters for x in c.lines] + [s.text for s in book.skipped]
    said = "\n".join(pieces)
    return [n for n in text_nodes(path, skip) if n not in said]


def test_chapters_follow_the_nested_toc_and_split_at_anchors(tmp_path: Path) -> None:
    book = read_epub(book3(tmp_path))
    assert texts(book) == {
        "Copyright": ["Copyright", "All rights reserved."],
        "Part One": ["Part One", "The part opens here."],
        "Chapter 1": [
            "Chapter 1",
            "Alpha begins here.",
            "Beta after the image.",
            "Gamma with 漢字 ruby.",
        ],
        "Chapter 2": [
            "Chapter 2",
            "Delta in chapter two, x2 kept.",
            "Epsilon ends.",
            "Zeta continues chapter two in another file.",
        ],
        "About the Author": ["About the Author", "She writes."],
    }
    assert [c.id for c in book.chapters] == ["ch01", "ch02", "ch03", "ch04", "ch05"]
    assert [x.heading for x in book.chapters[2].lines] == [True, False, False, False]
    first = book.chapters[2].lines[1]
    assert first.file == f"{tmp_path / 'book.epub'}!OEBPS/body.xhtml" and first.line == 4


def test_nothing_is_lost_and_skips_say_why(tmp_path: Path) -> None:
    path = book3(tmp_path)
    book = read_epub(path)
    assert lost(path, book) == []
    reasons = {(s.text, s.reason) for s in book.skipped}
    assert reasons >= {
        ("1", "footnote marker"),
        ("[2]", "footnote marker"),
        ("[3]", "footnote marker"),
        ("7", "page number"),
        ("(", "ruby reading"),
        ("かん", "ruby reading"),
        ("じ", "ruby reading"),
        ("Footnote body text.", "footnote or endnote text"),
        ("Cover words", "before the first table-of-contents entry"),
        ("Endnote file, not linear.", "non-linear spine file in no table-of-contents entry"),
        ("Contents", "the book's own table of contents page"),
    }
    assert any("tail.xhtml is in no TOC entry" in n for n in book.notes)


def test_metadata_and_cover(tmp_path: Path) -> None:
    info = read_epub(book3(tmp_path)).info
    assert (info.title, info.author, info.language) == ("A Test Book", "Ann Author", "en")
    assert info.cover is not None
    assert (info.cover.data, info.cover.media_type) == (PNG, "image/png")


def test_include_and_exclude_by_title_and_position(tmp_path: Path) -> None:
    path = book3(tmp_path)
    book = read_epub(path, EpubOptions(exclude=("copyright", -1)))
    assert [c.title for c in book.chapters] == ["Part One", "Chapter 1", "Chapter 2"]
    assert [c.id for c in book.chapters] == ["ch02", "ch03", "ch04"]  # ids stay by TOC place
    left = [s for s in book.skipped if "left out" in s.reason]
    assert [s.text for s in left] == ["Copyright", "All rights reserved.", "About the Author",
                                      "She writes."]
    assert "exclude: 'copyright'" in left[0].reason and "exclude: -1" in left[2].reason
    assert lost(path, book) == []
    only = read_epub(path, EpubOptions(include=("re:^chapter \\d+$",)))
    assert [c.title for c in only.chapters] == ["Chapter 1", "Chapter 2"]


def test_bad_selector_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"book.epub: bad regex 're:\['"):
        read_epub(book3(tmp_path), EpubOptions(include=("re:[",)))


def test_epub2_with_only_an_ncx(tmp_path: Path) -> None:
    points = nav_point(
        "p1", "Book One", "text/one.xhtml",
        nav_point("p2", "First", "text/one.xhtml#a") + nav_point("p3", "Second", "text/two.xhtml"),
    )
    manifest = [
        ("ncx", "toc.ncx", "application/x-dtbncx+xml", ""),
        ("one", "text/one.xhtml", XHTML, ""),
        ("two", "text/two.xhtml", XHTML, ""),
        ("cov", "images/c.jpg", "image/jpeg", ""),
    ]
    path = write_epub(
        tmp_path / "old.epub",
        {
            "content.opf": opf(manifest, ["one", "two"], version="2.0", toc_id="ncx",
                               extra_meta='<meta name="cover" content="cov"/>'),
            "toc.ncx": ncx(points),
            "text/one.xhtml": xhtml('<h1>Book One</h1><p id="a">First&#160;words.</p>'),
            "text/two.xhtml": xhtml("<p>Second words.</p>"),
            "images/c.jpg": b"\xff\xd8\xff\xe0jpeg",
        },
    )
    book = read_epub(path)
    assert texts(book) == {
        "Book One": ["Book One"],
        "First": ["First words."],
        "Second": ["Second words."],
    }
    assert book.info.cover is not None and book.info.cover.media_type == "image/jpeg"


def test_entity_and_cjk_line_breaks(tmp_path: Path) -> None:
    html = (
        '<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE html>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml"><body>'
        "<h1>第一章</h1><p>　　他说：\n  “你好&nbsp;世界。”</p><p>a&mdash;b</p></body></html>"
    )
    manifest = [("nav", "nav.xhtml", XHTML, "nav"), ("c", "c.xhtml", XHTML, "")]
    path = write_epub(
        tmp_path / "zh.epub",
        {
            "content.opf": opf(manifest, ["c"], language="zh"),
            "nav.xhtml": nav('<li><a href="c.xhtml">第一章</a></li>'),
            "c.xhtml": html,
        },
    )
    book = read_epub(path)
    assert texts(book) == {"第一章": ["第一章", "他说：“你好 世界。”", "a—b"]}


def test_no_toc_gives_one_chapter_per_file(tmp_path: Path) -> None:
    manifest = [("a", "a.xhtml", XHTML, ""), ("b", "b.xhtml", XHTML, "")]
    path = write_epub(
        tmp_path / "flat.epub",
        {
            "content.opf": opf(manifest, ["a", "b"], version="2.0"),
            "a.xhtml": xhtml("<h1>One</h1><p>x</p>"),
            "b.xhtml": xhtml("<p>y</p>"),
        },
    )
    book = read_epub(path)
    assert texts(book) == {"One": ["One", "x"], None: ["y"]}
    assert "no table of contents" in book.notes[0]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not a zip at all", "not a readable zip archive"),
        (None, "not a readable EPUB"),
    ],
)
def test_corrupt_books_are_one_clear_error(
    tmp_path: Path, data: bytes | None, message: str
) -> None:
    path = tmp_path / "bad.epub"
    if data is None:  # a zip with no container.xml
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("mimetype", "application/epub+zip")
    else:
        path.write_bytes(data)
    with pytest.raises(ManifestError) as info:
        read_epub(path)
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)
    assert "Traceback" not in str(info.value)


def test_zip_bomb_is_refused_before_inflating(tmp_path: Path) -> None:
    path = tmp_path / "bomb.epub"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        zf.writestr("OEBPS/zeros.xhtml", b"\0" * (4 * 1024 * 1024))
    with pytest.raises(ManifestError, match="looks like a zip bomb"):
        read_epub(path)
    small = EpubLimits(max_total_bytes=1000, max_ratio=1e9)
    with pytest.raises(ManifestError, match=r"inflates to \d+ bytes \(limit 1000\)"):
        read_epub(path, EpubOptions(limits=small))
    with pytest.raises(ManifestError, match="refused: 2 files"):
        read_epub(path, EpubOptions(limits=EpubLimits(max_entries=1)))


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"missing\.epub: cannot read the file"):
        read_epub(tmp_path / "missing.epub")


def test_shared_places_missing_anchors_and_loose_markup(tmp_path: Path) -> None:
    items = (
        '<li><span>Group without a link</span><ol>'
        '<li><a href="a.xhtml">Part</a></li>'
        '<li><a href="a.xhtml">Chapter A</a></li></ol></li>'
        '<li><a href="a.xhtml#mid">Chapter B</a></li>'
        '<li><a href="b.html#nowhere">Chapter C</a></li>'
        '<li><a href="extra.xhtml">Not in the spine</a></li>'
    )
    manifest = [
        ("nav", "nav.xhtml", XHTML, "nav"),
        ("a", "a.xhtml", XHTML, ""),
        ("b", "b.html", "application/xhtml+xml", ""),
        ("extra", "extra.xhtml", XHTML, ""),
    ]
    loose = b"<html><body><p>Loose&nbsp;markup <b>bold</p><p>still here</body></html>"
    path = write_epub(
        tmp_path / "odd.epub",
        {
            "content.opf": opf(manifest, ["a", "b", "ghost"]),
            "nav.xhtml": nav(items),
            "a.xhtml": xhtml('<p>Aye one.<a id="mid"/>Bee starts mid-paragraph.</p><p>Bee 2.</p>'),
            "b.html": loose,
            "extra.xhtml": xhtml("<p>Never read.</p>"),
        },
    )
    book = read_epub(path)
    assert texts(book) == {
        "Chapter A": ["Aye one."],
        "Chapter B": ["Bee starts mid-paragraph.", "Bee 2."],
        "Chapter C": ["Loose markup bold", "still here"],
    }
    assert lost(path, book, skip=("OEBPS/nav.xhtml",)) == ["Never read."]  # not in the spine
    notes = "\n".join(book.notes)
    assert "no anchor #nowhere" in notes
    assert "'Part' has no text of its own" in notes
    assert "'Not in the spine' points at extra.xhtml" in notes
    assert "spine item 'ghost' is not in the manifest" in notes


def test_drm_is_refused_but_obfuscated_fonts_are_not(tmp_path: Path) -> None:
    def listing(uri: str) -> str:
        return (
            '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
            'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
            f'<enc:CipherData><enc:CipherReference URI="{uri}"/></enc:CipherData>'
            "</enc:EncryptedData></encryption>"
        )

    for uri, refused in (("OEBPS/body.xhtml", True), ("OEBPS/font.otf", False)):
        path = book3(tmp_path)
        with zipfile.ZipFile(path, "a") as zf:
            zf.writestr("META-INF/encryption.xml", listing(uri))
        if refused:
            with pytest.raises(ManifestError, match=r"book\.epub: the book's text is encrypted"):
                read_epub(path)
        else:
            assert len(read_epub(path).chapters) == 5
