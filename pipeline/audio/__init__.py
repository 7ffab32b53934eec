"""Chapter assembly: joins, pauses, transcoding, loudness, subtitles, the m4b book."""

from pipeline.audio.assemble import assemble_chapter
from pipeline.audio.book import build_book
from pipeline.audio.check import check_audio
from pipeline.audio.model import (
    OUTPUT_FORMATS,
    SUBTITLE_FORMATS,
    AudioError,
    ChapterAudio,
    ChapterSpec,
    Cue,
    Part,
)

__all__ = [
    "OUTPUT_FORMATS",
    "SUBTITLE_FORMATS",
    "AudioError",
    "ChapterAudio",
    "ChapterSpec",
    "Cue",
    "Part",
    "assemble_chapter",
    "build_book",
    "check_audio",
]
