"""XHTML text rules: white space, what is left out, and anchors inside paragraphs."""

from __future__ import annotations

import pytest

from pipeline.books.xhtml import Anchor, Left, Para, collapse, events, parse_document


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("  a \t b\n\n c  ", "a b c"),
        ("他说\n  你好", "他说你好"),
        ("English\n中文", "English中文"),
        ("line one\r\nline two", "line one line two"),
        ("soft\u00adhyphen zero\u200bwidth", "softhyphen zerowidth"),
        ("", ""),
    ],
)
def test_collapse(raw: str, text: str) -> None:
    assert collapse(raw) == text


def test_events_in_order() -> None:
    root = parse_document(
        b'<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">'
        b'<body><h1>Title<br/>Second part</h1><p>One<a id="x"/>two'
        b'<span epub:type="pagebreak">12</span> three<script>var a;</script></p>'
        b'<p hidden="">secret</p><p><math><mi>x</mi></math> after</p>'
        b'<table><tr><td>cell one</td><td>cell two</td></tr></table></body></html>'
    )
    assert list(events(root, {"x"})) == [
        Para("Title Second part", 1, True),
        Para("One", 1, False),
        Anchor("x"),
        Left("12", "page number", 1),
        Para("two three", 1, False),
        Left("secret", "hidden element", 1),
        Left("x", "MathML formula", 1),
        Para("after", 1, False),
        Para("cell one", 1, False),
        Para("cell two", 1, False),
    ]
