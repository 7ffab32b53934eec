"""Build small EPUB files in tests, byte by byte, so every structure is exactly known."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

CONTAINER = """<?xml version="1.0"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles><rootfile full-path="OEBPS/content.opf"
    media-type="application/oebps-package+xml"/></rootfiles>
</container>"""

# A 1x1 PNG: the cover and the illustration.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def xhtml(body: str, title: str = "t") -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">'
        f"<head><title>{title}</title></head>\n<body>\n{body}\n</body></html>"
    )


def nav(items: str) -> str:
    return xhtml(f'<nav epub:type="toc" id="toc"><h1>Contents</h1><ol>{items}</ol></nav>')


def ncx(points: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1">'
        '<head><meta name="dtb:uid" content="id"/></head><docTitle><text>T</text></docTitle>'
        f"<navMap>{points}</navMap></ncx>"
    )


def nav_point(pid: str, label: str, src: str, children: str = "") -> str:
    return (
        f'<navPoint id="{pid}"><navLabel><text>{label}</text></navLabel>'
        f'<content src="{src}"/>{children}</navPoint>'
    )


def opf(
    manifest: Sequence[tuple[str, str, str, str]],
    spine: Sequence[str | tuple[str, str]],
    *,
    title: str = "A Test Book",
    author: str = "Ann Author",
    language: str = "en",
    version: str = "3.0",
    toc_id: str | None = None,
    extra_meta: str = "",
) -> str:
    items = "".join(
        f'<item id="{i}" href="{h}" media-type="{m}"' + (f' properties="{p}"' if p else "") + "/>"
        for i, h, m, p in manifest
    )
    refs = "".join(
        f'<itemref idref="{s}"/>' if isinstance(s, str)
        else f'<itemref idref="{s[0]}" linear="{s[1]}"/>'
        for s in spine
    )
    toc = f' toc="{toc_id}"' if toc_id else ""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<package xmlns="http://www.idpf.org/2007/opf" version="{version}" '
        'unique-identifier="uid"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:opf="http://www.idpf.org/2007/opf">'
        f'<dc:identifier id="uid">urn:uuid:1</dc:identifier><dc:title>{title}</dc:title>'
        f"<dc:creator>{author}</dc:creator><dc:language>{language}</dc:language>{extra_meta}"
        f"</metadata><manifest>{items}</manifest><spine{toc}>{refs}</spine></package>"
    )


def write_epub(path: Path, files: Mapping[str, str | bytes]) -> Path:
    """An EPUB whose mimetype comes first and stored, like a real one."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        zf.writestr("META-INF/container.xml", CONTAINER)
        for name, data in files.items():
            zf.writestr(f"OEBPS/{name}", data)
    return path
