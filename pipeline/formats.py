"""The one registry of audio formats: what the API returns and what we write.

Every list of formats elsewhere (``speech.FORMATS``, ``audio.OUTPUT_FORMATS``, the job file's
``output.format``, ``say -o FILE``'s extensions, the local server's content types) is derived
from the two tables below, so that a format is added in one place.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ApiFormat:
    """A ``response_format`` of the speech API."""

    name: str
    extension: str  # the chunk file's extension and the natural output format
    content_type: str
    say_suffixes: tuple[str, ...]  # `say -o FILE` suffixes that ask for this format as is


@dataclass(frozen=True)
class OutputFormat:
    """A chapter file format (``output.format``); ``work`` is what to ask the API for."""

    name: str
    work: str | None  # None: the chapter's own response_format
    in_job_file: bool = True  # pcm has no header: a chapter file of it only via `say`


API_FORMATS = (
    ApiFormat("mp3", "mp3", "audio/mpeg", (".mp3",)),
    ApiFormat("wav", "wav", "audio/wav", (".wav",)),
    ApiFormat("pcm", "pcm", "audio/pcm", (".pcm",)),
    ApiFormat("ogg_opus", "opus", "audio/ogg", (".opus", ".ogg")),
)
OUTPUT_FORMAT_TABLE = (
    OutputFormat("mp3", None),
    OutputFormat("opus", None),
    OutputFormat("flac", "wav"),
    OutputFormat("m4a", "wav"),
    OutputFormat("wav", None),
    OutputFormat("pcm", None, in_job_file=False),
)
SUBTITLE_FORMATS = ("srt", "vtt")
BOOK_SUFFIX = ".m4b"

FORMATS = tuple(f.name for f in API_FORMATS)
FILE_EXTENSIONS = {f.name: f.extension for f in API_FORMATS}
CONTENT_TYPES = {f.name: f.content_type for f in API_FORMATS}
OUTPUT_FORMATS = tuple(f.name for f in OUTPUT_FORMAT_TABLE)
JOB_OUTPUT_FORMATS = tuple(f.name for f in OUTPUT_FORMAT_TABLE if f.in_job_file)

# An audio file's format by its extension: what the API returns, what we write, and books.
AUDIO_FILE_FORMATS: dict[str, str] = {
    **{suffix: f.name for f in API_FORMATS for suffix in f.say_suffixes},
    **{f".{f.name}": f.name for f in OUTPUT_FORMAT_TABLE if f.work is not None},
    BOOK_SUFFIX: "m4a",
}

# `say -o FILE`: what to ask the API for, and what to make of it, by the file's extension.
SAY_FORMATS: dict[str, tuple[str, str | None]] = {
    **{suffix: (f.name, None) for f in API_FORMATS for suffix in f.say_suffixes},
    **{f".{f.name}": (f.work, f.name) for f in OUTPUT_FORMAT_TABLE if f.work is not None},
}
