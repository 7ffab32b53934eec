"""Reading a source file whole, within a size limit, as text; errors name the file."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import ManifestError, Problem


def problem(display: str, line: int | None, message: str) -> ManifestError:
    return ManifestError([Problem(display, line, message)])


def read_capped(path: Path, display: str, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise problem(display, None, f"refused: {size} bytes (limit {max_bytes})")
        return path.read_bytes()
    except OSError as error:
        raise problem(display, None, f"cannot read the file: {error.strerror or error}") from None


def decode(data: bytes, display: str, encoding: str = "utf-8") -> str:
    """``data`` as text (a UTF-8 byte-order mark is dropped); the error names line and byte."""
    try:
        return data.decode("utf-8-sig" if encoding.lower() in ("utf-8", "utf8") else encoding)
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise problem(display, line, (
            f"not {encoding} (byte {error.start}); save the file as UTF-8 or set its "
            "encoding (for example gb18030)")) from None
    except LookupError:
        raise problem(display, None, f"unknown encoding {encoding!r}") from None
