"""One audiobook for the whole job: AAC in an .m4b, or one .mp3, with a mark per chapter.

The AAC book is encoded in pieces on every core (``bookcores``); an mp3 book by one LAME.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.audio.avutil import av_errors
from pipeline.audio.bookcores import BookAudio, encode_book
from pipeline.audio.control import CancelCheck, ProgressFn, Watch
from pipeline.audio.model import AudioError, BookInfo, Mark
from pipeline.audio.process import Block, decode_blocks, encode, open_part
from pipeline.audio.tags import read_cover, write_id3_tags, write_mp4_tags
from pipeline.audio.timeline import samples_to_ms
from pipeline.fileio import atomic_path

if TYPE_CHECKING:
    from av.container.core import Chapter  # a TypedDict of PyAV's stubs only

_BOOK_FORMATS = {".m4b": "m4a", ".m4a": "m4a", ".mp3": "mp3"}


def _probe(path: Path, pcm_sample_rate: int | None) -> tuple[int, str]:
    fmt = _format_of(path, pcm_sample_rate)
    with av_errors(f"reading {path.name}"), open_part(path, fmt, pcm_sample_rate or 0) as c:
        if not c.streams.audio:
            raise AudioError(f"{path.name}: no audio stream")
        context = c.streams.audio[0].codec_context
        return context.sample_rate, "mono" if context.channels == 1 else "stereo"


def _format_of(path: Path, pcm_sample_rate: int | None) -> str:
    if path.suffix.lower() != ".pcm":
        return "auto"
    if pcm_sample_rate is None:
        raise AudioError(f"{path.name}: a headerless .pcm chapter needs pcm_sample_rate")
    return "pcm"


def _book_info(info: BookInfo | None, title: str | None, artist: str | None) -> BookInfo:
    base = info or BookInfo()
    return dataclasses.replace(base, title=base.title or title, author=base.author or artist)


def build_book(
    chapters: Sequence[tuple[Path, str]],
    out_path: Path,
    *,
    title: str | None = None,
    artist: str | None = None,
    pcm_sample_rate: int | None = None,
    info: BookInfo | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelCheck | None = None,
) -> Path:
    """Write ``out_path`` (.m4b AAC, or .mp3): every chapter file in order, one mark each.

    ``chapters`` are (chapter file, chapter title). The book takes the first chapter's rate
    and channels; the others are resampled to them. Marks start at the exact decoded sample
    where each chapter starts. ``info`` goes into the tags (``title``/``artist`` fill its
    title and author when it has none); an mp3 book gets ID3 CHAP/CTOC frames. ``progress``
    gets the seconds of book audio done; FinishCancelled from ``cancel`` leaves no file.
    """
    if not chapters:
        raise AudioError("a book needs at least one chapter")
    fmt = _BOOK_FORMATS.get(out_path.suffix.lower())
    if fmt is None:
        raise AudioError(f"{out_path.name}: a book is written as .m4b, .m4a or .mp3")
    book = _book_info(info, title, artist)
    if book.cover is not None:
        read_cover(book.cover)  # a bad cover fails before minutes of encoding, not after
    watch = Watch(progress, cancel, out_path.name)
    watch.check()
    rate, layout = _probe(chapters[0][0], pcm_sample_rate)
    marks: list[Chapter] = []
    metadata = {k: v for k, v in (("title", book.title), ("album", book.title)) if v}
    if book.author:
        metadata["artist"] = book.author
    with atomic_path(out_path) as tmp:
        if fmt == "mp3":
            blocks = _book_blocks(chapters, pcm_sample_rate, rate, layout, watch, marks)
            encode(
                blocks,
                tmp,
                fmt,
                rate,
                layout,
                metadata,
                before_close=lambda container: container.set_chapters(marks),
            )
            write_id3_tags(tmp, book, marks=[_mark(m, rate) for m in marks])
        else:
            audio = _book_audio(chapters, pcm_sample_rate, rate, layout)
            marks = encode_book(audio, tmp, metadata, [title for _, title in chapters], watch)
            write_mp4_tags(tmp, book)
        watch.check()
    watch.complete(marks[-1]["end"] / rate)
    return out_path


def _book_audio(
    chapters: Sequence[tuple[Path, str]], pcm_sample_rate: int | None, rate: int, layout: str
) -> BookAudio:
    paths = tuple(path for path, _ in chapters)
    formats = tuple(_format_of(path, pcm_sample_rate) for path in paths)
    return BookAudio(paths, formats, pcm_sample_rate or 0, rate, layout)


def _book_blocks(
    chapters: Sequence[tuple[Path, str]],
    pcm_sample_rate: int | None,
    rate: int,
    layout: str,
    watch: Watch,
    marks: list[Chapter],
) -> Iterator[Block]:
    """Every chapter's audio in order; a mark per chapter appended to ``marks`` at its end."""
    start = 0
    for index, (path, chapter_title) in enumerate(chapters):
        fmt = _format_of(path, pcm_sample_rate)
        samples = 0
        for block in decode_blocks(path, fmt, pcm_sample_rate or 0, rate, layout):
            samples += block.shape[1]
            yield block
            watch.advance((start + samples) / rate)
        mark: Chapter = {
            "id": index + 1,
            "start": start,
            "end": start + samples,
            "time_base": Fraction(1, rate),
            "metadata": {"title": chapter_title},
        }
        marks.append(mark)
        start += samples


def _mark(chapter: Chapter, rate: int) -> Mark:
    title = str(chapter["metadata"].get("title", ""))
    return Mark(title, samples_to_ms(chapter["start"], rate), samples_to_ms(chapter["end"], rate))
