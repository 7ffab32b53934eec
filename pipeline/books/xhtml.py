"""One XHTML content document -> paragraphs, anchors and left-out text, in document order.

What is not spoken, each with its reason (the caller turns them into ``Skipped`` notes):
footnote and endnote markers (``noteref`` links, ``<sup>`` references, short numeric links),
footnote and endnote bodies (``epub:type`` / DPUB-ARIA roles), page numbers (``pagebreak``),
ruby readings (``<rt>``, ``<rp>``, ``<rtc>``; the base text is kept), text inside SVG images
and MathML formulas, and elements with the ``hidden`` attribute. ``<head>``, ``<script>``,
``<style>`` and ``<template>`` are not shown by a reader and are ignored. Headings become their
own paragraph; an image is inline, so the text after it goes on as before.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lxml import etree
from lxml import html as lxml_html

_OPS_TYPE = "{http://www.idpf.org/2007/ops}type"
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_BLOCKS = _HEADINGS | frozenset(
    "p div li ul ol dl dt dd blockquote section article aside header footer nav figure "
    "figcaption table caption tr td th tbody thead tfoot pre hr br main address body center "
    "details summary".split()
)
_IGNORED = frozenset({"head", "script", "style", "template", "title"})
_NOTE_BODY_TYPES = frozenset(
    {"footnote", "endnote", "rearnote", "note", "footnotes", "endnotes", "rearnotes"}
)
_NOTE_BODY_ROLES = frozenset({"doc-footnote", "doc-endnote", "doc-endnotes"})
# A link or superscript that is only a short number or a note symbol marks a note: "[12]", "*".
_MARKER_TEXT = re.compile(r"\s*[\[(]?\s*(?:\d{1,4}|[*†‡§¶]{1,3})\s*[\])]?\s*")
_NOTE_CLASS = re.compile(r"(?:^|[\s_-])(?:fn|note|footnote|endnote|noteref)", re.IGNORECASE)
# Chinese and Japanese write no spaces: a line break next to one of these is dropped, as the
# manifest's paragraph rule does (Hangul is left out: Korean puts spaces between words).
_EAST_ASIAN = re.compile(
    r"[\u2e80-\u2fff\u3000-\u303f\u3040-\u30ff\u3100-\u312f\u31a0-\u31ff\u3400-\u4dbf"
    r"\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]"
)
_SPACES = re.compile(r"\s+")
_BROKEN = re.compile(r"[^\S\n\r]*[\n\r]\s*")


@dataclass(frozen=True, slots=True)
class Para:
    text: str
    line: int | None
    heading: bool


@dataclass(frozen=True, slots=True)
class Anchor:
    id: str


@dataclass(frozen=True, slots=True)
class Left:
    text: str
    reason: str
    line: int | None


Event = Para | Anchor | Left


class XhtmlError(ValueError):
    """The document cannot be parsed even by the forgiving HTML parser."""


def parse_document(data: bytes) -> Any:
    """The element tree of an XHTML document: strict XML first, then lxml's HTML parser.

    XML without a DTD does not know HTML entities such as ``&nbsp;``; the HTML parser does,
    and forgives the broken markup some books carry. Neither loads DTDs or the network.
    """
    xml_parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True
    )
    try:
        return etree.fromstring(data, xml_parser)
    except etree.XMLSyntaxError:
        pass
    try:
        return lxml_html.document_fromstring(data, parser=lxml_html.HTMLParser(no_network=True))
    except (etree.ParserError, etree.XMLSyntaxError, ValueError) as error:
        raise XhtmlError(str(error) or "no content") from None


def element_ids(root: Any) -> set[str]:
    """Every ``id`` (and old-style ``<a name>``) a table-of-contents fragment may point at."""
    found: set[str] = set()
    for el in root.iter():
        if isinstance(el.tag, str):
            found.update(v for v in (el.get("id"), _a_name(el)) if v)
    return found


def _a_name(el: Any) -> str | None:
    return el.get("name") if _local(el) == "a" else None


def collapse(text: str) -> str:
    """HTML white space rules: runs become one space; a line break next to CJK disappears."""
    text = text.replace("\u00ad", "").replace("\u200b", "")
    if "\n" in text or "\r" in text:  # only runs with a line break need to look around them
        text = _BROKEN.sub(lambda m: _join_break(text, m), text)
    return _SPACES.sub(" ", text).strip()


def _join_break(text: str, match: re.Match[str]) -> str:
    before = text[match.start() - 1] if match.start() else " "
    after = text[match.end()] if match.end() < len(text) else " "
    return "" if _EAST_ASIAN.match(before) or _EAST_ASIAN.match(after) else " "


def _local(el: Any) -> str:
    tag = el.tag
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1].lower()


def _types(el: Any) -> set[str]:
    raw = f"{el.get(_OPS_TYPE) or ''} {el.get('epub:type') or ''}"
    return set(raw.split())


def _has_link(el: Any) -> bool:
    if any(_local(a) == "a" and a.get("href") for a in el.iter()):
        return True
    return any(_local(a) == "a" and a.get("href") for a in el.iterancestors())


def _all_text(el: Any) -> str:
    parts = [el.text or ""]
    for node in el.iterdescendants():
        if node.tag is etree.Entity:
            parts.append(html.unescape(node.text or ""))
        elif isinstance(node.tag, str):  # comments and processing instructions are not text
            parts.append(node.text or "")
        parts.append(node.tail or "")
    return collapse("".join(parts))


def left_out_reason(el: Any) -> str | None:
    """Why this element's whole text is not spoken, or None when it is."""
    name = _local(el)
    types = _types(el)
    role = (el.get("role") or "").strip()
    if "noteref" in types or role == "doc-noteref":
        return "footnote marker"
    if types & _NOTE_BODY_TYPES or role in _NOTE_BODY_ROLES:
        return "footnote or endnote text"
    if "pagebreak" in types or role == "doc-pagebreak":
        return "page number"
    if name in ("rt", "rp", "rtc"):
        return "ruby reading"
    if name in ("svg", "math"):
        return "text inside an SVG image" if name == "svg" else "MathML formula"
    if el.get("hidden") is not None:
        return "hidden element"
    if name in ("sup", "a") and _is_marker(el, name):
        return "footnote marker"
    return None


def _is_marker(el: Any, name: str) -> bool:
    text = "".join(el.itertext())
    if name == "a":
        return bool(el.get("href")) and _MARKER_TEXT.fullmatch(text) is not None
    if _has_link(el) or _NOTE_CLASS.search(el.get("class") or ""):
        return True
    # A bare superscript digit is an exponent or an ordinal (m², 1st); brackets or symbols are not.
    return _MARKER_TEXT.fullmatch(text) is not None and not text.strip().isdigit()


class _Walker:
    def __init__(self, targets: set[str]) -> None:
        self.targets = targets
        self.events: list[Event] = []
        self.pieces: list[str] = []
        self.line: int | None = None
        self.heading = False

    def add(self, text: str | None, line: int | None) -> None:
        if not text:
            return
        if self.line is None and text.strip():
            self.line = line
        self.pieces.append(text)

    def flush(self) -> None:
        text = collapse("".join(self.pieces))
        if text:
            self.events.append(Para(text, self.line, self.heading))
        self.pieces = []
        self.line = None

    def walk(self, el: Any) -> None:
        name = _local(el)
        if el.tag is etree.Entity:
            self.add(html.unescape(el.text or ""), el.sourceline)
        elif name and name not in _IGNORED:
            self.element(el, name)
        self.add(el.tail, el.sourceline)

    def element(self, el: Any, name: str) -> None:
        anchor = el.get("id") or _a_name(el)
        if name == "br" and self.heading:  # a heading broken over two lines is still one
            self.add(" ", None)
            return
        block = name in _BLOCKS
        if anchor in self.targets or block:
            self.flush()
        if anchor in self.targets:
            self.events.append(Anchor(anchor))
        reason = left_out_reason(el)
        if reason is not None:
            text = _all_text(el)
            if text:
                self.events.append(Left(text, reason, el.sourceline))
            return
        outer = self.heading
        if name in _HEADINGS:
            self.heading = True
        self.add(el.text, el.sourceline)
        for child in el:
            self.walk(child)
        if block:
            self.flush()
        self.heading = outer


def events(root: Any, targets: set[str]) -> Iterator[Event]:
    """Paragraphs, target anchors and left-out text of ``root``'s ``<body>``, in order."""
    body = next((el for el in root.iter() if _local(el) == "body"), root)
    walker = _Walker(targets)
    walker.element(body, "body")
    walker.flush()
    yield from walker.events
