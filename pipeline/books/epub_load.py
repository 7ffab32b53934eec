"""Opening an EPUB safely with ebooklib: size limits, metadata, cover, and the flat TOC.

Every failure of the archive or of ebooklib becomes one ``ManifestError`` naming the file
(the one place ebooklib's exceptions are converted). The archive is checked before ebooklib
reads it, because ebooklib reads every manifest item whole into memory: the declared sizes are
what Python's ``zipfile`` will inflate at most, so checking them refuses a zip bomb up front.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import ebooklib
from ebooklib import epub
from lxml import etree

from pipeline.books.model import BookInfo, Cover
from pipeline.books.xhtml import collapse
from pipeline.errors import ManifestError, Problem

MIB = 1024 * 1024


@dataclass(frozen=True)
class EpubLimits:
    """Refuse archives past these before anything is inflated."""

    max_file_bytes: int = 512 * MIB
    max_total_bytes: int = 1024 * MIB  # all entries, inflated
    max_entry_bytes: int = 256 * MIB
    max_entries: int = 20_000
    max_ratio: float = 200.0  # inflated / compressed, for entries over ratio_floor_bytes
    ratio_floor_bytes: int = 1 * MIB


@dataclass(frozen=True, slots=True)
class TocEntry:
    """One table-of-contents entry: ``file`` is relative to the package (OPF) folder."""

    title: str | None
    file: str
    fragment: str | None


@dataclass
class Loaded:
    book: Any  # ebooklib.epub.EpubBook (untyped library)
    opf_dir: str
    toc: list[TocEntry]
    toc_source: str  # "nav", "ncx" or "none"


def fail(display: str, message: str) -> ManifestError:
    return ManifestError([Problem(display, None, message)])


def check_archive(data: bytes, display: str, limits: EpubLimits) -> None:
    try:
        infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as error:
        raise fail(display, f"not an EPUB (not a readable zip archive: {error})") from None
    if len(infos) > limits.max_entries:
        raise fail(display, f"refused: {len(infos)} files in the archive (limit "
                   f"{limits.max_entries})")
    total = 0
    for info in infos:
        size = info.file_size
        total += size
        if size > limits.max_entry_bytes:
            raise fail(display, f"refused: {info.filename} inflates to {size} bytes (limit "
                       f"{limits.max_entry_bytes})")
        ratio = size / max(info.compress_size, 1)
        if size > limits.ratio_floor_bytes and ratio > limits.max_ratio:
            raise fail(display, f"refused: {info.filename} inflates {ratio:.0f} times (limit "
                       f"{limits.max_ratio:g}), which looks like a zip bomb")
    if total > limits.max_total_bytes:
        raise fail(display, f"refused: the archive inflates to {total} bytes (limit "
                   f"{limits.max_total_bytes})")
    _check_not_encrypted(data, display)


def _check_not_encrypted(data: bytes, display: str) -> None:
    """Refuse DRM: encrypted chapters would only yield "cannot be parsed" for every file.

    Obfuscated fonts are listed in the same ``encryption.xml`` and are harmless: only
    encrypted text documents count.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        try:
            listing = zf.read("META-INF/encryption.xml")
        except KeyError:
            return
    try:
        root = etree.fromstring(listing, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return  # a broken listing: the documents themselves will tell
    uris = [el.get("URI") or "" for el in root.iter() if str(el.tag).endswith("CipherReference")]
    if any(uri.lower().endswith((".xhtml", ".html", ".htm")) for uri in uris):
        raise fail(display, "the book's text is encrypted (DRM); use a copy without DRM")


def read_archive(path: Path, display: str, limits: EpubLimits) -> bytes:
    try:
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            raise fail(display, f"refused: {size} bytes (limit {limits.max_file_bytes})")
        data = path.read_bytes()
    except OSError as error:
        raise fail(display, f"cannot read the file: {error.strerror or error}") from None
    check_archive(data, display, limits)
    return data


def _ebooklib_read(data: bytes, ignore_ncx: bool) -> tuple[Any, str]:
    reader = epub.EpubReader(io.BytesIO(data), {"ignore_ncx": ignore_ncx})
    book = reader.load()
    reader.process()
    return book, reader.opf_dir


def load(path: Path, display: str, limits: EpubLimits) -> Loaded:
    """The book, its package folder and its flattened TOC (EPUB3 nav, else the NCX)."""
    data = read_archive(path, display, limits)
    try:
        book, opf_dir = _ebooklib_read(data, ignore_ncx=True)
        has_nav = any(isinstance(i, epub.EpubNav) for i in book.get_items())
        source = "nav" if has_nav else "ncx"
    except IndexError:  # a nav document without a toc nav: take the NCX instead
        source = "ncx"
        try:
            book, opf_dir = _ebooklib_read(data, ignore_ncx=False)
        except Exception as error:  # any ebooklib failure is a bad book
            raise _bad(display, error) from None
    except Exception as error:  # any ebooklib failure is a bad book
        raise _bad(display, error) from None
    toc = flatten_toc(book.toc, _ncx_dir(book) if source == "ncx" else "")
    return Loaded(book, opf_dir, toc, source if toc else "none")


def _bad(display: str, error: Exception) -> ManifestError:
    detail = str(error).strip("'\"") or type(error).__name__
    return fail(display, f"not a readable EPUB ({detail}); check that the file is a whole .epub")


def _ncx_dir(book: Any) -> str:
    for item in book.get_items_of_type(ebooklib.ITEM_NAVIGATION):
        return posixpath.dirname(str(item.file_name))
    return ""


def _target(href: str, base: str) -> tuple[str, str | None]:
    path, _, fragment = href.partition("#")
    if base:
        path = posixpath.join(base, path)
    return posixpath.normpath(unquote(path)), unquote(fragment) or None


def flatten_toc(toc: Any, base: str) -> list[TocEntry]:
    """Nested entries in reading order: a section's own entry comes before its children.

    ebooklib resolves nav hrefs against the package folder but NCX ``src`` as written, which is
    relative to the NCX file, hence ``base``. A section without a link has no text of its
    own (its children carry it), so it is not an entry.
    """
    out: list[TocEntry] = []
    for node in toc:
        children: Any = ()
        if isinstance(node, tuple | list):
            node, children = node[0], node[1]
        href = getattr(node, "href", "") or ""
        if href:
            file, fragment = _target(href, base)
            title = collapse(node.title or "") or None
            out.append(TocEntry(title, file, fragment))
        out.extend(flatten_toc(children, base))
    return out


def _first(book: Any, name: str) -> str | None:
    values = [collapse(v or "") for v, _ in book.get_metadata("DC", name)]
    values = [v for v in values if v]
    if not values:
        return None
    return ", ".join(values) if name == "creator" else values[0]


def _cover(book: Any) -> Cover | None:
    items = [i for i in book.get_items() if isinstance(i, epub.EpubCover)]
    if not items:  # EPUB 2: <meta name="cover" content="item id"/>
        # ebooklib files it under "cover" or, when the OPF namespace is the default, "meta"
        metas = book.get_metadata("OPF", "cover") + book.get_metadata("OPF", "meta")
        for _, attrs in metas:
            if (attrs or {}).get("name") != "cover":
                continue
            item = book.get_item_with_id(attrs.get("content"))
            if item is not None and (item.media_type or "").startswith("image/"):
                items.append(item)
    for item in items:
        if item.content:
            return Cover(bytes(item.content), item.media_type, item.file_name)
    return None


def book_info(book: Any) -> BookInfo:
    return BookInfo(
        title=_first(book, "title"),
        author=_first(book, "creator"),
        language=_first(book, "language"),
        cover=_cover(book),
    )
