"""Chapter assembly: joins, pauses, transcoding, loudness, subtitles, the m4b book.

Names are imported on first use (module ``__getattr__``): the model is light, while
assembly, the book and the answer check load PyAV and numpy, which a run needs only after
its first answer, never on the way to its first request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.lazy import lazy_attributes

if TYPE_CHECKING:
    from pipeline.audio.assemble import assemble_chapter
    from pipeline.audio.book import build_book
    from pipeline.audio.check import check_audio
    from pipeline.audio.control import FinishCancelled
    from pipeline.audio.model import (
        OUTPUT_FORMATS,
        SUBTITLE_FORMATS,
        AudioError,
        BookInfo,
        ChapterAudio,
        ChapterSpec,
        Cue,
        Part,
    )

_MODEL = "pipeline.audio.model"
_WHERE = {
    "assemble_chapter": "pipeline.audio.assemble",
    "build_book": "pipeline.audio.book",
    "check_audio": "pipeline.audio.check",
    "FinishCancelled": "pipeline.audio.control",
    "BookInfo": _MODEL,
    "OUTPUT_FORMATS": _MODEL,
    "SUBTITLE_FORMATS": _MODEL,
    "AudioError": _MODEL,
    "ChapterAudio": _MODEL,
    "ChapterSpec": _MODEL,
    "Cue": _MODEL,
    "Part": _MODEL,
}


__getattr__ = lazy_attributes(__name__, _WHERE, globals())


__all__ = [
    "OUTPUT_FORMATS",
    "SUBTITLE_FORMATS",
    "AudioError",
    "BookInfo",
    "ChapterAudio",
    "ChapterSpec",
    "Cue",
    "FinishCancelled",
    "Part",
    "assemble_chapter",
    "build_book",
    "check_audio",
]
