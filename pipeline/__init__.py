"""tts-pipeline: async batch speech synthesis for the Coze speech API.

The names below are the library's public surface; everything else is internal. They are
imported on first use (module ``__getattr__``), so ``import pipeline`` loads nothing heavy:
no aiohttp server, PyAV or numpy until a name that needs them is touched. The local server
(the product's offline mode) is ``pipeline.localserver``, not part of this surface.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.lazy import lazy_attributes as _lazy_attributes

if TYPE_CHECKING:
    from pipeline.api import plan, run_job, say, voices
    from pipeline.audio import (
        ChapterAudio,
        ChapterSpec,
        Cue,
        Part,
        assemble_chapter,
        build_book,
        check_audio,
    )
    from pipeline.backend import Backend, SpeechResult
    from pipeline.cache import ChunkCache, OutputLock
    from pipeline.chunking import split_text
    from pipeline.coze.client import ClientConfig, SpeechClient, Synthesis, Voice
    from pipeline.errors import (
        ApiError,
        AudioError,
        BadAudio,
        BudgetExhausted,
        ConfigError,
        FatalApiError,
        ManifestError,
        PipelineError,
        Problem,
        RateLimited,
        RequestRejected,
        TransientApiError,
    )
    from pipeline.limits import DEFAULT_RATE_LIMIT, AdaptiveRateLimiter, RateLimit
    from pipeline.manifest import Chapter, Job, Line, Overrides, load_job, split_paragraphs
    from pipeline.planning import Chunk, Plan, plan_job
    from pipeline.report import RunReport, write_report
    from pipeline.runner import OutputOptions, RetryPolicy, RunConfig, Runner, run_plan
    from pipeline.settings import Target
    from pipeline.speech import MAX_INPUT_BYTES, SpeechParams, SpeechRequest

# name -> the module that defines it
_WHERE = {
    **dict.fromkeys(("plan", "run_job", "say", "voices"), "pipeline.api"),
    **dict.fromkeys(
        (
            "ChapterAudio",
            "ChapterSpec",
            "Cue",
            "Part",
            "assemble_chapter",
            "build_book",
            "check_audio",
        ),
        "pipeline.audio",
    ),
    **dict.fromkeys(("Backend", "SpeechResult"), "pipeline.backend"),
    **dict.fromkeys(("ChunkCache", "OutputLock"), "pipeline.cache"),
    "split_text": "pipeline.chunking",
    **dict.fromkeys(("ClientConfig", "SpeechClient", "Synthesis", "Voice"), "pipeline.coze.client"),
    **dict.fromkeys(
        (
            "ApiError",
            "AudioError",
            "BadAudio",
            "BudgetExhausted",
            "ConfigError",
            "FatalApiError",
            "ManifestError",
            "PipelineError",
            "Problem",
            "RateLimited",
            "RequestRejected",
            "TransientApiError",
        ),
        "pipeline.errors",
    ),
    **dict.fromkeys(("DEFAULT_RATE_LIMIT", "AdaptiveRateLimiter", "RateLimit"), "pipeline.limits"),
    **dict.fromkeys(
        ("Chapter", "Job", "Line", "Overrides", "load_job", "split_paragraphs"),
        "pipeline.manifest",
    ),
    **dict.fromkeys(("Chunk", "Plan", "plan_job"), "pipeline.planning"),
    **dict.fromkeys(("RunReport", "write_report"), "pipeline.report"),
    **dict.fromkeys(
        ("OutputOptions", "RetryPolicy", "RunConfig", "Runner", "run_plan"), "pipeline.runner"
    ),
    "Target": "pipeline.settings",
    **dict.fromkeys(("MAX_INPUT_BYTES", "SpeechParams", "SpeechRequest"), "pipeline.speech"),
}

__all__ = [
    "AdaptiveRateLimiter",
    "ApiError",
    "AudioError",
    "Backend",
    "BadAudio",
    "BudgetExhausted",
    "Chapter",
    "ChapterAudio",
    "ChapterSpec",
    "Chunk",
    "ChunkCache",
    "ClientConfig",
    "ConfigError",
    "Cue",
    "DEFAULT_RATE_LIMIT",
    "FatalApiError",
    "Job",
    "Line",
    "MAX_INPUT_BYTES",
    "ManifestError",
    "OutputLock",
    "OutputOptions",
    "Overrides",
    "Part",
    "PipelineError",
    "Plan",
    "Problem",
    "RateLimit",
    "RateLimited",
    "RequestRejected",
    "RetryPolicy",
    "RunConfig",
    "RunReport",
    "Runner",
    "SpeechClient",
    "SpeechParams",
    "SpeechRequest",
    "SpeechResult",
    "Synthesis",
    "Target",
    "TransientApiError",
    "Voice",
    "__version__",
    "assemble_chapter",
    "build_book",
    "check_audio",
    "load_job",
    "plan",
    "plan_job",
    "run_job",
    "run_plan",
    "say",
    "split_paragraphs",
    "split_text",
    "voices",
    "write_report",
]


_lazy = _lazy_attributes("pipeline", _WHERE, globals())


def __getattr__(name: str) -> object:
    if name == "__version__":
        from pipeline.version import VERSION

        globals()[name] = VERSION
        return VERSION
    return _lazy(name)


def __dir__() -> list[str]:
    return __all__
