"""Book metadata and the tags that carry it: MP4 atoms (m4b, m4a) and ID3v2 (mp3).

FFmpeg writes a title and an album but no cover art, narrator or description into MP4, and
nothing of CHAP/CTOC into mp3; mutagen (a small, well-kept pure-Python tag library)
writes them into the finished temp file, before it gets its final name.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mutagen import MutagenError
from mutagen import id3 as _id3
from mutagen import mp4 as _mp4

from pipeline.audio.model import AudioError, BookInfo, Mark

# Much of mutagen (ID3 frames, MP4, their methods) has no annotations: used through Any.
id3: Any = _id3
mp4: Any = _mp4

_JPEG, _PNG = b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"
_MAX_COVER_BYTES = 16 << 20  # a cover is a picture, not a payload; players refuse huge ones


def read_cover(path: Path) -> tuple[bytes, str]:
    """The cover's bytes and MIME type; AudioError naming the file when it is unusable."""
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_COVER_BYTES + 1)
    except OSError as e:
        raise AudioError(f"{path}: cannot read the cover image: {e.strerror or e}") from e
    if len(data) > _MAX_COVER_BYTES:
        raise AudioError(f"{path}: the cover image is over 16 MiB; use a smaller picture")
    if data.startswith(_JPEG):
        return data, "image/jpeg"
    if data.startswith(_PNG):
        return data, "image/png"
    raise AudioError(f"{path}: the cover image must be a JPEG or PNG file")


def _text(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


def write_mp4_tags(path: Path, info: BookInfo, *, chapter_title: str | None = None) -> None:
    """Title, author, narrator, year, description, language and cover into an MP4 file.

    ``chapter_title`` names a single chapter file (its ©nam); a book's ©nam is its title.
    """
    cover = read_cover(info.cover) if info.cover is not None else None
    try:
        tagged = mp4.MP4(str(path))
        if tagged.tags is None:
            tagged.add_tags()
        tags = tagged.tags
        assert tags is not None
        found = {
            "©nam": _text(chapter_title) or _text(info.title),
            "©alb": _text(info.title),
            "©ART": _text(info.author),
            "aART": _text(info.author),
            "©wrt": _text(info.narrator),
            "©nrt": _text(info.narrator),
            "©day": _text(info.year),
            "desc": _text(info.description),
            "ldes": _text(info.description),
        }
        for key, value in found.items():
            if value is not None:
                tags[key] = [value]
        if language := _text(info.language):
            tags["----:com.apple.iTunes:LANGUAGE"] = [mp4.MP4FreeForm(language.encode())]
        tags["stik"] = [2]  # media kind: audiobook
        if cover is not None:
            png = cover[1] == "image/png"
            kind = mp4.MP4Cover.FORMAT_PNG if png else mp4.MP4Cover.FORMAT_JPEG
            tags["covr"] = [mp4.MP4Cover(cover[0], imageformat=kind)]
        tagged.save()
    except MutagenError as e:
        raise AudioError(f"{path.name}: cannot write its MP4 tags: {e}") from e


def _chapter_frames(marks: Sequence[Mark]) -> list[Any]:
    ids = [f"ch{i}" for i in range(1, len(marks) + 1)]
    frames: list[Any] = [
        id3.CTOC(
            element_id="toc",
            flags=id3.CTOCFlags.TOP_LEVEL | id3.CTOCFlags.ORDERED,
            child_element_ids=ids,
            sub_frames=[id3.TIT2(encoding=3, text=["Chapters"])],
        )
    ]
    for element_id, mark in zip(ids, marks, strict=True):
        frames.append(
            id3.CHAP(
                element_id=element_id,
                start_time=mark.start_ms,
                end_time=mark.end_ms,
                # 0xFFFFFFFF: "no byte offset, use the times" (ID3v2 chapter addendum).
                start_offset=0xFFFFFFFF,
                end_offset=0xFFFFFFFF,
                sub_frames=[id3.TIT2(encoding=3, text=[mark.title])],
            )
        )
    return frames


def write_id3_tags(
    path: Path,
    info: BookInfo,
    *,
    chapter_title: str | None = None,
    track: int | None = None,
    marks: Sequence[Mark] = (),
) -> None:
    """ID3v2.4 tags into an mp3 file: the book's fields, cover, CHAP/CTOC for ``marks``."""
    cover = read_cover(info.cover) if info.cover is not None else None
    try:
        try:
            tags = id3.ID3(str(path))
        except id3.ID3NoHeaderError:
            tags = id3.ID3()
        texts = (
            (id3.TIT2, _text(chapter_title) or _text(info.title)),
            (id3.TALB, _text(info.title)),
            (id3.TPE1, _text(info.author)),
            (id3.TPE2, _text(info.author)),
            (id3.TCOM, _text(info.narrator)),
            (id3.TDRC, _text(info.year)),
            (id3.TLAN, _text(info.language)),
        )
        for frame, value in texts:
            if value is not None:
                tags.setall(frame.__name__, [frame(encoding=3, text=[value])])
        if narrator := _text(info.narrator):
            tags.setall("TXXX:NARRATOR", [id3.TXXX(encoding=3, desc="NARRATOR", text=[narrator])])
        if track is not None:
            tags.setall("TRCK", [id3.TRCK(encoding=3, text=[str(track)])])
        if description := _text(info.description):
            tags.setall("COMM", [id3.COMM(encoding=3, lang="und", desc="", text=[description])])
        if cover is not None:
            picture = id3.APIC(encoding=3, mime=cover[1], type=3, desc="Cover", data=cover[0])
            tags.setall("APIC", [picture])
        if marks:
            tags.delall("CHAP")
            tags.delall("CTOC")
            for frame in _chapter_frames(marks):
                tags.add(frame)
        # No padding: the file is written once, and FFmpeg (8.1) fails to open a short mp3
        # whose tag ends in a kilobyte of padding.
        tags.save(str(path), v2_version=4, padding=lambda _info: 0)
    except MutagenError as e:
        raise AudioError(f"{path.name}: cannot write its ID3 tags: {e}") from e
