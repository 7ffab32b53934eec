"""Manifests and job files -> ``Job``: chapters, lines, and each line's resolved speech parameters.

The package's parts (see docs/architecture.md): ``model`` (the neutral chapters readers make
and the resolved ``Job``), ``text`` (paragraph rules), ``readers`` (one module per source
format, registered by suffix in ``readers.READERS``) and ``resolve`` (ids, inheritance and the
command line). Validation finds every problem in one pass and raises one ``ManifestError``
whose problems read ``FILE:LINE: message``.
"""

from __future__ import annotations

from pipeline.formats import JOB_OUTPUT_FORMATS as OUTPUT_FORMATS
from pipeline.formats import SUBTITLE_FORMATS
from pipeline.manifest.model import (
    BACKENDS,
    BOOK_KEYS,
    BOOK_SOURCE_KEYS,
    CHAPTER_KEYS,
    CSV_COLUMNS,
    CSV_REQUIRED,
    JOB_ONLY_KEYS,
    LAYER_KEYS,
    LINE_KEYS,
    LOUDNESS_LUFS_RANGE,
    MAX_ID_LENGTH,
    MAX_PAUSE_MS,
    NO_OVERRIDES,
    OUTPUT_KEYS,
    RUN_KEYS,
    SPEECH_KEYS,
    TEXT_KEYS,
    TEXT_SOURCES,
    TOP_KEYS,
    BookMeta,
    BookOptions,
    Chapter,
    Job,
    Layer,
    Line,
    OutputSettings,
    Overrides,
    RunSettings,
    Source,
    SourceChapter,
    SourceLine,
)
from pipeline.manifest.readers import READERS, ReadContext, Reader
from pipeline.manifest.resolve import load_job
from pipeline.manifest.text import split_paragraphs
from pipeline.settings import DEFAULT_PAUSE_MS

__all__ = [
    "BACKENDS",
    "BOOK_KEYS",
    "BOOK_SOURCE_KEYS",
    "CHAPTER_KEYS",
    "CSV_COLUMNS",
    "CSV_REQUIRED",
    "DEFAULT_PAUSE_MS",
    "JOB_ONLY_KEYS",
    "LAYER_KEYS",
    "LINE_KEYS",
    "LOUDNESS_LUFS_RANGE",
    "MAX_ID_LENGTH",
    "MAX_PAUSE_MS",
    "NO_OVERRIDES",
    "OUTPUT_FORMATS",
    "OUTPUT_KEYS",
    "READERS",
    "RUN_KEYS",
    "SPEECH_KEYS",
    "SUBTITLE_FORMATS",
    "TEXT_KEYS",
    "TEXT_SOURCES",
    "TOP_KEYS",
    "BookMeta",
    "BookOptions",
    "Chapter",
    "Job",
    "Layer",
    "Line",
    "OutputSettings",
    "Overrides",
    "ReadContext",
    "Reader",
    "RunSettings",
    "Source",
    "SourceChapter",
    "SourceLine",
    "load_job",
    "split_paragraphs",
]
