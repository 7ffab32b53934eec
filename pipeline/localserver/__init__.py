"""The Coze-compatible local server: the stand-in for ``api.coze.cn`` in tests and offline runs.

``serve_in_thread(ServerConfig(...))`` (sync callers), ``running_server(...)`` (async callers)
and ``serve_forever(...)`` (the ``serve-local`` command) start a ``LocalServer``; its ``stats``
count what it saw and ``queue_faults`` makes the next requests fail in chosen ways.
"""

from pipeline.coze.protocol import LOGID_HEADER
from pipeline.localserver.app import LocalServer
from pipeline.localserver.config import ENGINES, FAULT_KINDS, ServerConfig
from pipeline.localserver.encode import CONTENT_TYPES, apply_gain, encode
from pipeline.localserver.engines import Engine, make_engine
from pipeline.localserver.faults import Fault, parse_fault
from pipeline.localserver.responses import new_logid
from pipeline.localserver.serving import running_server, serve_forever, serve_in_thread
from pipeline.localserver.stats import ServerStats, body_key
from pipeline.localserver.tone import ToneEngine, tone_duration, tone_frequency

__all__ = [
    "CONTENT_TYPES",
    "ENGINES",
    "FAULT_KINDS",
    "LOGID_HEADER",
    "Engine",
    "Fault",
    "LocalServer",
    "ServerConfig",
    "ServerStats",
    "ToneEngine",
    "apply_gain",
    "body_key",
    "encode",
    "make_engine",
    "new_logid",
    "parse_fault",
    "running_server",
    "serve_forever",
    "serve_in_thread",
    "tone_duration",
    "tone_frequency",
]
