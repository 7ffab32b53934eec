"""The Coze-compatible local server: ``POST /v1/audio/speech`` and ``GET /v1/audio/voices``.

Order of checks for a speech request, and why: authentication (4100), then the rate limits
(4009 over ``qps``, 4020 over ``max_in_flight``), as a gateway does before the service sees
the request; then an injected fault, if one is due (faults model the service failing on an
admitted request, so they come before the service reads the body; a quality fault is
served like any request, its text or samples spoilt); then the body (4000, with
the validator of ``pipeline.speech``), the voice (4200), the latency and the synthesis.
Synthesis and encoding run in a worker thread so that the event loop keeps answering.

Admin routes, for tests and the CLI, without authentication: ``GET /_local/stats``,
``POST /_local/faults`` (a JSON list of faults to queue), ``POST /_local/reset``.
Every answer carries ``X-Tt-Logid``; see responses.py for the codes' HTTP statuses.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import logging
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiohttp import web

from pipeline.coze.protocol import SPEECH_PATH, VOICES_PATH
from pipeline.errors import ConfigError
from pipeline.localserver.admission import TokenBucket
from pipeline.localserver.config import ServerConfig
from pipeline.localserver.encode import CONTENT_TYPES, Samples, apply_gain, encode
from pipeline.localserver.engines import Engine, is_thread_safe, make_engine, voice_exists
from pipeline.localserver.faults import (
    Fault,
    FaultPlan,
    answer_fault,
    spoil_samples,
    spoil_text,
)
from pipeline.localserver.responses import CODE_MESSAGES, add_logid_header, coze_error, logid_of
from pipeline.localserver.stats import ServerStats, body_key
from pipeline.settings import host_id, url_host
from pipeline.speech import (
    DEFAULT_EMOTION_SCALE,
    DEFAULT_FORMAT,
    DEFAULT_LOUDNESS_RATE,
    DEFAULT_SAMPLE_RATE,
    DEFAULT_SPEED,
    check_body,
)

logger = logging.getLogger(__name__)

MAX_PAGE_SIZE = 100
VOICE_STATES = ("init", "cloned", "all")
MODEL_TYPES = ("big", "small")
# How long stop() lets running requests finish before cancelling them.
SHUTDOWN_TIMEOUT_S = 2.0
# Synthesis threads: PyAV and numpy release the GIL, so a few overlap even on two cores.
RENDER_THREADS = 4
# A server always answers some audio: an engine that returns nothing gets this much silence.
MIN_AUDIO_S = 0.05

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Synthesis:
    """What one valid speech body asks the engine and the encoder for."""

    text: str
    voice_id: str
    speed: float
    emotion: str | None
    emotion_scale: float
    sample_rate: int
    response_format: str
    loudness_rate: int

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Synthesis:
        """From a body that ``check_body`` passed; unset fields take Coze's defaults."""
        return cls(
            text=body["input"],
            voice_id=body["voice_id"],
            speed=float(body.get("speed", DEFAULT_SPEED)),
            emotion=body.get("emotion") or None,
            emotion_scale=float(body.get("emotion_scale", DEFAULT_EMOTION_SCALE)),
            sample_rate=body.get("sample_rate", DEFAULT_SAMPLE_RATE),
            response_format=body.get("response_format", DEFAULT_FORMAT),
            loudness_rate=body.get("loudness_rate", DEFAULT_LOUDNESS_RATE),
        )

    def samples(self, engine: Engine) -> Samples:
        samples = engine.synthesize(
            self.text,
            self.voice_id,
            self.speed,
            self.emotion,
            self.emotion_scale,
            self.sample_rate,
        )
        if samples.size == 0:
            return np.zeros(round(self.sample_rate * MIN_AUDIO_S), dtype=np.int16)
        return samples

    def encode(self, samples: Samples) -> bytes:
        return encode(
            apply_gain(samples, self.loudness_rate), self.sample_rate, self.response_format
        )


class LocalServer:
    """One Coze-compatible server on a loopback port; see the module docstring.

    ``start()`` and ``stop()`` run on the server's event loop; ``stats``, ``queue_faults()``
    and ``reset()`` may be used from any thread.
    """

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self.stats = ServerStats()
        self.engine = make_engine(self.config.engine)
        self._faults = FaultPlan(self.config.fault_rate, self.config.fault_kinds, self.config.seed)
        self._bucket = TokenBucket(self.config.qps, self.config.burst) if self.config.qps else None
        self._latency_random = random.Random(f"latency:{self.config.seed}")
        self._engine_lock = None if is_thread_safe(self.engine) else threading.Lock()
        self._runner: web.AppRunner | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._stopping: asyncio.Event | None = None
        self._base_url: str | None = None

    def __repr__(self) -> str:
        return f"LocalServer(config={self.config!r}, base_url={self._base_url!r})"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` once started."""
        if self._base_url is None:
            raise RuntimeError("the local server is not started")
        return self._base_url

    def queue_faults(self, faults: Iterable[object]) -> int:
        """Queue faults for the next speech requests (see faults.py); returns the queue length."""
        return self._faults.queue(faults)

    def reset(self) -> None:
        """Zero the stats, empty the fault queue, refill the rate limit, reseed the draws."""
        self.stats.reset()
        self._faults.reset()
        self._latency_random.seed(f"latency:{self.config.seed}")
        if self._bucket is not None:
            self._bucket.reset()

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> str:
        """Bind and serve; returns the base URL."""
        if self._runner is not None:
            raise RuntimeError("the local server is already started")
        self._stopping = asyncio.Event()
        self._executor = ThreadPoolExecutor(RENDER_THREADS, thread_name_prefix="local-tts")
        # handler_cancellation: a client that gives up ends its stalled or slow request.
        runner = web.AppRunner(
            self._build_app(),
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        )
        await runner.setup()
        self._runner = runner
        try:
            await web.TCPSite(runner, self.config.host, self.config.port).start()
        except OSError as exc:
            await self.stop()
            raise ConfigError(
                f"local server: cannot listen on {self.config.host}:{self.config.port}: {exc}"
            ) from exc
        host, port = runner.addresses[0][:2]
        self._base_url = host_id(f"http://{url_host(_reachable(host))}:{port}")
        return self._base_url

    async def stop(self) -> None:
        """Stop serving; stalled requests end at once, others get SHUTDOWN_TIMEOUT_S."""
        if self._stopping is not None:
            self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        self._base_url = None

    async def __aenter__(self) -> LocalServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[_internal_errors])
        app.on_response_prepare.append(add_logid_header)
        app.router.add_post(SPEECH_PATH, self._speech)
        app.router.add_get(VOICES_PATH, self._voices)
        app.router.add_get("/_local/stats", self._admin_stats)
        app.router.add_post("/_local/faults", self._admin_faults)
        app.router.add_post("/_local/reset", self._admin_reset)
        return app

    # -- speech --------------------------------------------------------------------------

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        self.stats.record_arrival(time.monotonic())
        response = self._refusal(request)
        if response is None:
            self.stats.enter()
            try:
                response = await self._serve_admitted(request)
            finally:
                self.stats.leave()
        if response.status == 429:
            self.stats.record_rate_limited()
        return response

    def _refusal(self, request: web.Request) -> web.StreamResponse | None:
        """The answer for a request that must not reach the service, or None."""
        refused = self._auth_refusal(request)
        if refused is not None:
            return refused
        if self._bucket is not None:
            wait = self._bucket.take()
            if wait > 0:
                retry_after = str(max(1, math.ceil(wait)))
                return coze_error(
                    request, 4009, CODE_MESSAGES[4009], headers={"Retry-After": retry_after}
                )
        limit = self.config.max_in_flight
        if limit is not None and self.stats.in_flight >= limit:
            return coze_error(request, 4020, CODE_MESSAGES[4020])
        return None

    def _auth_refusal(self, request: web.Request) -> web.StreamResponse | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return coze_error(
                request,
                4100,
                "authentication is invalid: send the header 'Authorization: Bearer <token>'",
            )
        expected = self.config.token
        if expected is not None and not hmac.compare_digest(
            token.encode("utf-8"), expected.encode("utf-8")
        ):
            return coze_error(request, 4100, "authentication is invalid: the token was refused")
        return None

    async def _serve_admitted(self, request: web.Request) -> web.StreamResponse:
        fault = self._faults.next()
        if fault is not None:
            self.stats.record_fault(fault.label)
        if fault is not None and not fault.spoils_audio:
            assert self._stopping is not None
            return await answer_fault(
                request, fault, stall_s=self.config.stall_s, stopping=self._stopping
            )
        body = await _read_body(request)
        if isinstance(body, web.StreamResponse):
            return body
        synthesis = Synthesis.from_body(body)
        if not voice_exists(self.engine, synthesis.voice_id):
            return coze_error(
                request, 4200, f"voice_id {synthesis.voice_id!r} was not found (resource not found)"
            )
        key = body_key(body)
        self.stats.enter_input(key)
        try:
            await asyncio.sleep(self._latency_s(synthesis.text))
            audio = await self._render(synthesis, fault)
            self.stats.record_audio(body, len(synthesis.text), time.monotonic())
            response = web.Response(
                body=audio, content_type=CONTENT_TYPES[synthesis.response_format]
            )
            # Written here, not by aiohttp after the handler returns, so that the input stays
            # "in flight" in the stats until its audio has left.
            await response.prepare(request)
            await response.write_eof()
            return response
        finally:
            self.stats.leave_input(key)

    def _latency_s(self, text: str) -> float:
        base = self.config.latency_ms + self.config.latency_per_byte_ms * len(text.encode())
        if base <= 0:
            return 0.0
        jitter = self.config.jitter
        factor = 1.0 + self._latency_random.uniform(-jitter, jitter) if jitter else 1.0
        return base * factor / 1000.0

    async def _render(self, synthesis: Synthesis, fault: Fault | None = None) -> bytes:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._render_blocking, synthesis, fault)

    def _render_blocking(self, synthesis: Synthesis, fault: Fault | None = None) -> bytes:
        spoken = synthesis
        if fault is not None:
            spoken = dataclasses.replace(synthesis, text=spoil_text(fault, synthesis.text))
        if self._engine_lock is None:
            samples = spoken.samples(self.engine)
        else:
            with self._engine_lock:
                samples = spoken.samples(self.engine)
        if fault is not None:
            samples = spoil_samples(fault, samples, synthesis.sample_rate)
        return synthesis.encode(samples)

    # -- voices --------------------------------------------------------------------------

    async def _voices(self, request: web.Request) -> web.StreamResponse:
        refused = self._auth_refusal(request)
        if refused is not None:
            return refused
        query = _VoiceQuery.parse(request.query)
        if isinstance(query, str):
            return coze_error(request, 4000, query)
        voices = [v for v in self.engine.voices() if query.matches(v)]
        start = (query.page_num - 1) * query.page_size
        page = voices[start : start + query.page_size]
        data = {"has_more": start + query.page_size < len(voices), "voice_list": page}
        return web.json_response(
            {"code": 0, "msg": "", "detail": {"logid": logid_of(request)}, "data": data}
        )

    # -- admin ---------------------------------------------------------------------------

    async def _admin_stats(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.stats.snapshot())

    async def _admin_faults(self, request: web.Request) -> web.StreamResponse:
        try:
            items = await request.json()
        except ValueError:
            return coze_error(request, 4000, "the body is not valid JSON")
        if not isinstance(items, list):
            return coze_error(request, 4000, "the body must be a JSON list of faults")
        try:
            queued = self.queue_faults(items)
        except ConfigError as exc:
            return coze_error(request, 4000, str(exc))
        return web.json_response({"queued": queued})

    async def _admin_reset(self, request: web.Request) -> web.StreamResponse:
        self.reset()
        return web.json_response(self.stats.snapshot())


@dataclass(frozen=True)
class _VoiceQuery:
    filter_system_voice: bool = False
    model_type: str | None = None
    voice_state: str = "cloned"
    page_num: int = 1
    page_size: int = MAX_PAGE_SIZE

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> _VoiceQuery | str:
        """The query of ``GET /v1/audio/voices``, or the message naming its bad parameter."""
        flag = query.get("filter_system_voice", "false").lower()
        if flag not in ("true", "false", "1", "0"):
            return f"filter_system_voice {flag!r} must be true or false"
        model_type = query.get("model_type") or None
        if model_type is not None and model_type not in MODEL_TYPES:
            return f"model_type {model_type!r} is not one of {', '.join(MODEL_TYPES)}"
        state = query.get("voice_state") or "cloned"
        if state not in VOICE_STATES:
            return f"voice_state {state!r} is not one of {', '.join(VOICE_STATES)}"
        page_num = _query_int(query.get("page_num", "1"))
        if page_num is None or page_num < 1:
            return f"page_num {query.get('page_num')!r} must be a whole number from 1"
        page_size = _query_int(query.get("page_size", str(MAX_PAGE_SIZE)))
        if page_size is None or not 1 <= page_size <= MAX_PAGE_SIZE:
            return f"page_size {query.get('page_size')!r} must be a whole number from 1 to 100"
        return cls(flag in ("true", "1"), model_type, state, page_num, page_size)

    def matches(self, voice: dict[str, Any]) -> bool:
        if self.filter_system_voice and voice.get("is_system_voice"):
            return False
        if self.model_type is not None and voice.get("model_type") != self.model_type:
            return False
        return self.voice_state == "all" or voice.get("state") == self.voice_state


def _query_int(text: str) -> int | None:
    return int(text) if text.strip().isascii() and text.strip().isdigit() else None


async def _read_body(request: web.Request) -> dict[str, Any] | web.StreamResponse:
    """The speech body if it passes ``check_body``, else the 4000 answer naming the problem."""
    if request.content_type != "application/json":
        return coze_error(
            request, 4000, f"Content-Type must be application/json, not {request.content_type!r}"
        )
    try:
        body = json.loads(await request.read())
    except ValueError:
        return coze_error(request, 4000, "the body is not valid JSON")
    if not isinstance(body, dict):
        return coze_error(request, 4000, "the body must be a JSON object")
    problems = check_body(body)
    if problems:
        return coze_error(request, 4000, "; ".join(problems))
    return body


@web.middleware
async def _internal_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """An engine or encoder crash answers Coze's 5000, not aiohttp's text 500."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except ConnectionError:
        # The client left while a fault or an answer was being written: nobody to tell.
        return web.Response(status=500)
    except Exception:
        logger.exception("local server: %s %s failed", request.method, request.path)
        return coze_error(request, 5000, CODE_MESSAGES[5000])


def _reachable(host: str) -> str:
    # A server listening on every address is reached on the loopback one.
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    return "::1" if host == "::" else host
