"""A job file's ``book:`` section (the audiobook's tags and cover) and its book-source options
(``include``, ``exclude``, ``heading``, ``preface``), each value checked where it is written."""

from __future__ import annotations

import re
import stat
from pathlib import Path

from pipeline.books.model import Cover
from pipeline.manifest.model import BOOK_KEYS, BOOK_SOURCE_KEYS, BookMeta, BookOptions
from pipeline.manifest.readers import BOOK_SUFFIXES, ProblemSink
from pipeline.manifest.readers.yamltree import Node
from pipeline.manifest.text import display, is_whole, unknown

MAX_COVER_BYTES = 20 * 1024 * 1024  # a print-quality cover is a few MB; more is a mistake
_IMAGE_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
)
_TEXT_FIELDS = ("title", "author", "narrator", "description", "language")
PREFACES = ("chapter", "skip")


def book_section(
    node: Node | None, file: str, folder: Path, problem: ProblemSink
) -> BookMeta | None:
    """The ``book:`` mapping as ``BookMeta``; None when absent (or refused, after a problem)."""
    if node is None or node.value is None:
        return None
    if not node.is_map:
        problem(file, node.line, f"book must be a mapping of title, author, ..., not {node.kind()}")
        return None
    values: dict[str, object] = {}
    for key, child in node.value.items():
        if key not in BOOK_KEYS:
            problem(file, child.key_line, unknown(key, "key", BOOK_KEYS))
        elif child.value is None:
            continue
        elif key in _TEXT_FIELDS:
            text = child.text()
            if text is None or not text.strip():
                problem(file, child.line, f"book.{key} must be text, not {child.kind()}")
            else:
                values[key] = text.strip()
        elif key == "year":
            if is_whole(child.value) and 1 <= child.value <= 9999:
                values[key] = child.value
            else:
                problem(
                    file, child.line, f"book.year must be a year such as 1851, not {child.kind()}"
                )
        else:
            values[key] = _cover(child, file, folder, problem)
    return BookMeta(**values)  # type: ignore[arg-type]


def _cover(node: Node, file: str, folder: Path, problem: ProblemSink) -> Cover | None:
    name = node.text()
    if not isinstance(node.value, str) or not name or "\x00" in name:
        problem(file, node.line, "book.cover must be the path of a JPEG or PNG image")
        return None
    path = folder / name
    why = _cover_problem(path)
    if isinstance(why, str):
        problem(file, node.line, f"book.cover {name}: {why} ({display(path)})")
        return None
    return why


def _cover_problem(path: Path) -> Cover | str:
    try:
        info = path.stat()
    except FileNotFoundError:
        return "no such file"
    except OSError as e:
        return f"cannot read it: {e.strerror or e}"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_size > MAX_COVER_BYTES:
        return f"{info.st_size} bytes; a cover may have at most {MAX_COVER_BYTES}"
    try:
        data = path.read_bytes()
    except OSError as e:
        return f"cannot read it: {e.strerror or e}"
    for magic, media_type in _IMAGE_MAGIC:
        if data.startswith(magic):
            return Cover(data, media_type, path.name)
    return "not a JPEG or PNG image"


def book_options(root: Node, file: str, problem: ProblemSink, target: Node | None) -> BookOptions:
    """``include``, ``exclude``, ``heading`` and ``preface``: only next to a book ``manifest``."""
    m = root.value
    given = [k for k in BOOK_SOURCE_KEYS if k in m and m[k].value is not None]
    if not given:
        return BookOptions()
    name = target.text() if target is not None else None
    suffix = Path(name).suffix.lower() if name else ""
    if suffix not in BOOK_SUFFIXES:
        for key in given:
            problem(
                file,
                m[key].key_line,
                f"{key}: applies to a book named by 'manifest' "
                f"(a {' or '.join(BOOK_SUFFIXES)} file)",
            )
        return BookOptions()
    heading = _heading(m.get("heading"), file, problem, suffix)
    preface = m.get("preface")
    chosen = "chapter"
    if preface is not None and preface.value is not None:
        if preface.value in PREFACES:
            chosen = preface.value
        else:
            problem(file, preface.line, f"preface must be chapter or skip, not {preface.kind()}")
    return BookOptions(
        include=_selectors(m.get("include"), "include", file, problem),
        exclude=_selectors(m.get("exclude"), "exclude", file, problem),
        heading=heading,
        preface=chosen,
    )


def _heading(node: Node | None, file: str, problem: ProblemSink, suffix: str) -> str | None:
    if node is None or node.value is None:
        return None
    if suffix != ".txt":
        problem(file, node.key_line, "heading: applies to a .txt book only")
        return None
    if not isinstance(node.value, str) or not node.value.strip():
        problem(file, node.line, f"heading must be a regex, not {node.kind()}")
        return None
    try:
        re.compile(node.value)
    except re.error as e:
        problem(file, node.line, f"heading: bad regex {node.value!r}: {e}")
        return None
    return node.value


def _selectors(
    node: Node | None, key: str, file: str, problem: ProblemSink
) -> tuple[str | int, ...]:
    if node is None or node.value is None:
        return ()
    items = node.value if node.is_list else [node]
    out: list[str | int] = []
    for item in items:
        value = item.value
        if is_whole(value) and value != 0:
            out.append(value)
        elif isinstance(value, str) and value.strip():
            if value.startswith("re:"):
                try:
                    re.compile(value[3:])
                except re.error as e:
                    problem(file, item.line, f"{key}: bad regex {value!r}: {e}")
                    continue
            out.append(value)
        else:
            problem(
                file,
                item.line,
                f"{key}: want a chapter title (glob), re:REGEX or a "
                f"1-based position (negative from the end), not {item.kind()}",
            )
    return tuple(out)
