"""tts-pipeline: async batch speech synthesis for the Coze speech API.

The names below are the library's public surface; everything else is internal.
"""

from importlib import metadata as _metadata

from pipeline.audio import (
    ChapterAudio,
    ChapterSpec,
    Cue,
    Part,
    assemble_chapter,
    build_book,
    check_audio,
)
from pipeline.cache import ChunkCache, OutputLock
from pipeline.chunking import split_text
from pipeline.client import ClientConfig, SpeechClient, Synthesis, Voice
from pipeline.errors import (
    ApiError,
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
from pipeline.localserver import LocalServer, ServerConfig, running_server, serve_in_thread
from pipeline.manifest import Chapter, Job, Line, Overrides, load_job, split_paragraphs
from pipeline.planning import Chunk, Plan, plan_job
from pipeline.report import RunReport, write_report
from pipeline.runner import OutputOptions, RetryPolicy, RunConfig, Runner, run_plan
from pipeline.speech import MAX_INPUT_BYTES, SpeechParams, SpeechRequest

try:
    __version__ = _metadata.version("tts-pipeline")
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0"

__all__ = [
    "DEFAULT_RATE_LIMIT",
    "MAX_INPUT_BYTES",
    "AdaptiveRateLimiter",
    "ApiError",
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
    "FatalApiError",
    "Job",
    "Line",
    "LocalServer",
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
    "ServerConfig",
    "SpeechClient",
    "SpeechParams",
    "SpeechRequest",
    "Synthesis",
    "TransientApiError",
    "Voice",
    "__version__",
    "assemble_chapter",
    "build_book",
    "check_audio",
    "load_job",
    "plan_job",
    "run_plan",
    "running_server",
    "serve_in_thread",
    "split_paragraphs",
    "split_text",
    "write_report",
]
