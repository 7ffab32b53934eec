"""Chapter assembly: joins, pauses, transcoding, loudness, subtitles, the m4b book."""

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
