"""The HTTP client for the Coze speech API: the ONE place where aiohttp and HTTP become errors.

Every answer that is not usable audio becomes an :class:`~pipeline.errors.ApiError` of the class
that :func:`~pipeline.errors.error_class` picks, with the Coze code (or a pipeline code for
failures that have none), the HTTP status, the logid and the host. The answers this handles,
because the API documents none of them as the only one:

- HTTP 4xx/5xx with a JSON body ``{"code", "msg", "detail": {"logid"}}`` or an ``error`` object;
- HTTP 200 with a JSON body (an error, never audio);
- a body that is neither audio nor JSON (a proxy's HTML page): its HTTP status is the code;
- a body cut short, a connection refused or reset, a connect or read timeout.

The token goes into the ``Authorization`` header of each request and nowhere else: not into a
repr, a log line or an exception message.
"""

from __future__ import annotations

import email.utils
import html
import json
import logging
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from types import TracebackType
from typing import Any, Self

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from pipeline.errors import (
    CODE_BAD_AUDIO,
    CODE_NETWORK,
    CODE_SHORT_BODY,
    CODE_TIMEOUT,
    ApiError,
    BadAudio,
    ConfigError,
    RequestRejected,
    TransientApiError,
    error_class,
)
from pipeline.speech import SpeechRequest

__all__ = [
    "DEFAULT_BASE_URL",
    "ClientConfig",
    "SpeechClient",
    "Synthesis",
    "Voice",
]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.coze.cn"
SPEECH_PATH = "/v1/audio/speech"
VOICES_PATH = "/v1/audio/voices"
VOICES_PAGE_SIZE = 100
# A server that keeps saying has_more would otherwise keep the client paging forever.
MAX_VOICE_PAGES = 1000
MESSAGE_CHARS = 200
LOGID_HEADER = "X-Tt-Logid"


def _package_version() -> str:
    try:
        return metadata.version("tts-pipeline")
    except metadata.PackageNotFoundError:
        return "0"


DEFAULT_USER_AGENT = f"tts-pipeline/{_package_version()}"


@dataclass(frozen=True)
class ClientConfig:
    """Where and how to reach the API. The token is never part of a repr."""

    base_url: str = DEFAULT_BASE_URL
    token: str = field(default="", repr=False)
    connect_timeout: float = 10.0
    # Also the longest allowed gap between two reads of a body: a stalled answer is an error.
    read_timeout: float = 60.0
    total_timeout: float | None = None
    user_agent: str = DEFAULT_USER_AGENT

    def __post_init__(self) -> None:
        url = URL(self.base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigError(f"base URL {self.base_url!r} is not an http(s) URL with a host")
        if url.user is not None or url.password is not None:
            # Credentials in the URL would end up in messages; the token has its own field.
            raise ConfigError("the base URL must not carry credentials; pass the token instead")
        for name in ("connect_timeout", "read_timeout", "total_timeout"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be a positive number of seconds, not {value!r}")

    @property
    def host(self) -> str:
        """Scheme, host and (non-default) port of the base URL: what errors and reports name."""
        return str(URL(self.base_url).origin())

    def url(self, path: str) -> str:
        return str(URL(self.base_url.rstrip("/") + path))


@dataclass(frozen=True)
class Synthesis:
    """One successful answer: the audio bytes and what they were asked to be."""

    audio: bytes = field(repr=False)
    response_format: str
    sample_rate: int
    logid: str | None
    content_type: str
    host: str

    def __repr__(self) -> str:
        return (
            f"Synthesis({len(self.audio)} bytes, response_format={self.response_format!r}, "
            f"sample_rate={self.sample_rate!r}, logid={self.logid!r}, "
            f"content_type={self.content_type!r}, host={self.host!r})"
        )


@dataclass(frozen=True)
class Voice:
    """One entry of the voice list (``GET /v1/audio/voices``)."""

    voice_id: str
    name: str
    language_code: str = ""
    language_name: str = ""
    model_type: str = ""
    state: str = ""
    is_system_voice: bool = False
    preview_text: str = ""
    preview_audio: str = ""
    emotions: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> Voice:
        emotions = tuple(
            str(e["emotion"])
            for e in item.get("support_emotions") or ()
            if isinstance(e, Mapping) and e.get("emotion")
        )
        return cls(
            voice_id=str(item["voice_id"]),
            name=str(item.get("name") or ""),
            language_code=str(item.get("language_code") or ""),
            language_name=str(item.get("language_name") or ""),
            model_type=str(item.get("model_type") or ""),
            state=str(item.get("state") or ""),
            is_system_voice=bool(item.get("is_system_voice")),
            preview_text=str(item.get("preview_text") or ""),
            preview_audio=str(item.get("preview_audio") or ""),
            emotions=emotions,
        )


@dataclass(frozen=True)
class _Answer:
    """A complete HTTP answer, read to its end: what the interpreting functions look at."""

    status: int
    content_type: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def logid(self) -> str | None:
        return self.headers.get(LOGID_HEADER) or None


# ---------------------------------------------------------------------------------------------
# Third-party exceptions -> pipeline errors (the one place)


class _Progress:
    """How far one exchange got: a connection lost after the headers cut the body short."""

    headers_received = False


@contextmanager
def _map_transport_errors(host: str, token: str) -> Iterator[_Progress]:
    """Turn aiohttp and socket exceptions raised inside the block into ApiErrors."""
    progress = _Progress()
    try:
        yield progress
    except ApiError:
        raise
    except TimeoutError as exc:  # aiohttp's ServerTimeoutError is one too: check it first
        phase = "reading the answer" if progress.headers_received else "waiting for an answer"
        raise _transport_error(CODE_TIMEOUT, f"timed out {phase}", exc, host, token) from exc
    except aiohttp.ClientPayloadError as exc:
        raise _transport_error(CODE_SHORT_BODY, "answer cut short", exc, host, token) from exc
    except (aiohttp.ClientConnectionError, OSError) as exc:
        if progress.headers_received:
            what, code = "connection lost while reading the answer", CODE_SHORT_BODY
        else:
            what, code = "connection failed", CODE_NETWORK
        raise _transport_error(code, what, exc, host, token) from exc
    except aiohttp.ClientError as exc:
        raise _transport_error(CODE_NETWORK, "HTTP client error", exc, host, token) from exc


def _transport_error(
    code: int, what: str, exc: BaseException, host: str, token: str
) -> TransientApiError:
    detail = _scrub(str(exc), token)
    message = f"{what}: {type(exc).__name__}" + (f": {detail}" if detail else "")
    return TransientApiError(code, message, host=host)


def _scrub(text: str, token: str) -> str:
    # aiohttp never puts request headers in its messages; this guards against that changing.
    return text.replace(token, "***") if token else text


# ---------------------------------------------------------------------------------------------
# Answers -> results or errors (pure functions of an _Answer)


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _is_audio_type(media_type: str) -> bool:
    return media_type.startswith("audio/") or media_type == "application/octet-stream"


def _is_json_type(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def _json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is not one."""
    if not body.lstrip()[:1] == b"{":
        return None
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return None


def _first_text(*values: object) -> str | None:
    return next((str(v) for v in values if isinstance(v, str | int) and str(v).strip()), None)


def _json_error_fields(payload: Mapping[str, Any]) -> tuple[int | None, str, str | None]:
    """Code, message and logid of a Coze error body, in either of its shapes."""
    detail = payload.get("detail")
    error = payload.get("error")
    detail_map: Mapping[str, Any] = detail if isinstance(detail, Mapping) else {}
    error_map: Mapping[str, Any] = error if isinstance(error, Mapping) else {}
    code = _as_int(payload.get("code"))
    if code is None:
        code = _as_int(error_map.get("code"))
    message = _first_text(
        payload.get("msg"),
        payload.get("message"),
        error_map.get("msg"),
        error_map.get("message"),
        error_map.get("detail"),
        error if isinstance(error, str) else None,
    )
    logid = _first_text(detail_map.get("logid"), error_map.get("logid"))
    return code, message or "", logid


def _text_snippet(body: bytes) -> str:
    """The first words of an HTML or text body, without tags: enough to tell what answered."""
    text = body[: MESSAGE_CHARS * 20].decode("utf-8", errors="replace")
    text = re.sub(r"(?is)<(script|style)\b.*?</\1\s*>", " ", text)
    text = re.sub(r"(?s)<[^>]*>", " ", text)
    text = " ".join(html.unescape(text).split())
    return text[:MESSAGE_CHARS]


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def _api_error(answer: _Answer, code: int, message: str, logid: str | None, host: str) -> ApiError:
    cls = error_class(code, answer.status)
    return cls(
        code,
        message,
        http_status=answer.status,
        logid=logid or answer.logid,
        host=host,
        retry_after=parse_retry_after(answer.headers.get("Retry-After")),
    )


def _json_answer_error(answer: _Answer, payload: Mapping[str, Any], host: str) -> ApiError | None:
    """The error a JSON answer carries, or None when it says success (code 0 under HTTP 2xx)."""
    code, message, logid = _json_error_fields(payload)
    if code == 0 and answer.status < 400:
        return None
    if code is None or code == 0:
        code = answer.status
    if not message:
        message = f"HTTP {answer.status} with an error body and no message"
    return _api_error(answer, code, message, logid, host)


def _non_json_error(answer: _Answer, host: str) -> ApiError:
    snippet = _text_snippet(answer.body)
    media = _media_type(answer.content_type) or "no content type"
    message = snippet or f"HTTP {answer.status} with an empty {media} body"
    location = answer.headers.get("Location")
    if 300 <= answer.status < 400 and location:
        message = f"redirected to {location}; use that as the base URL"
    if answer.status < 400:
        message = f"not audio ({media}): {message}"
    return _api_error(answer, answer.status, message, None, host)


def _speech_result(answer: _Answer, request: SpeechRequest, host: str) -> Synthesis:
    """The audio of a speech answer, or the error it is."""
    media = _media_type(answer.content_type)
    payload = _json_object(answer.body)
    if payload is not None and (_is_json_type(media) or "code" in payload or answer.status >= 400):
        error = _json_answer_error(answer, payload, host)
        if error is None:
            # A JSON success is not audio: whatever it says, it must not reach an audio file.
            error = BadAudio(
                CODE_BAD_AUDIO,
                f"HTTP {answer.status} answered JSON with code 0 instead of audio",
                http_status=answer.status,
                logid=answer.logid,
                host=host,
            )
        raise error
    if answer.status != 200 or not _is_audio_type(media):
        raise _non_json_error(answer, host)
    if not answer.body:
        raise BadAudio(
            CODE_BAD_AUDIO,
            f"HTTP 200 {media} answer with an empty body",
            http_status=answer.status,
            logid=answer.logid,
            host=host,
        )
    return Synthesis(
        audio=answer.body,
        response_format=request.params.format,
        sample_rate=request.params.rate,
        logid=answer.logid,
        content_type=answer.content_type,
        host=host,
    )


def _json_data(answer: _Answer, host: str) -> Mapping[str, Any]:
    """The ``data`` object of a successful JSON answer, or the error the answer is."""
    payload = _json_object(answer.body)
    if payload is None:
        raise _non_json_error(answer, host)
    error = _json_answer_error(answer, payload, host)
    if error is not None:
        raise error
    data = payload.get("data")
    if not isinstance(data, Mapping):
        raise _api_error(answer, answer.status, "JSON answer without a data object", None, host)
    return data


# ---------------------------------------------------------------------------------------------


class SpeechClient:
    """Async client for ``/v1/audio/speech`` and ``/v1/audio/voices``.

    Use it as an async context manager: it holds one aiohttp session (and its connection pool)
    for the whole run.
    """

    def __init__(self, config: ClientConfig) -> None:
        self._config = config
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        state = "open" if self._session is not None and not self._session.closed else "closed"
        return f"SpeechClient(host={self.host!r}, {state})"

    @property
    def host(self) -> str:
        return self._config.host

    @property
    def config(self) -> ClientConfig:
        return self._config

    async def __aenter__(self) -> Self:
        config = self._config
        timeout = aiohttp.ClientTimeout(
            total=config.total_timeout,
            connect=config.connect_timeout,
            sock_connect=config.connect_timeout,
            sock_read=config.read_timeout,
        )
        # No pool cap: the runner's concurrency limit is the cap, and a pool wait would count
        # against the connect timeout.
        connector = aiohttp.TCPConnector(limit=0)
        self._session = aiohttp.ClientSession(
            timeout=timeout,
            connector=connector,
            headers={"User-Agent": config.user_agent},
            raise_for_status=False,
            trust_env=False,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def synthesize(self, request: SpeechRequest) -> Synthesis:
        """Speak one request. Raises an ApiError subclass for anything that is not audio.

        A request that breaks the contract is refused here (code 4000, the field named) and
        never sent: it would be billed for nothing or refused anyway.
        """
        problems = request.problems()
        if problems:
            raise RequestRejected(4000, "; ".join(problems), host=self.host)
        answer = await self._exchange("POST", SPEECH_PATH, json_body=request.body())
        return _speech_result(answer, request, self.host)

    async def list_voices(
        self, *, model_type: str | None = None, voice_state: str = "all"
    ) -> list[Voice]:
        """Every voice of the account, all pages of ``GET /v1/audio/voices``."""
        voices: list[Voice] = []
        for page in range(1, MAX_VOICE_PAGES + 1):
            params = {
                "page_num": str(page),
                "page_size": str(VOICES_PAGE_SIZE),
                "voice_state": voice_state,
            }
            if model_type is not None:
                params["model_type"] = model_type
            answer = await self._exchange("GET", VOICES_PATH, params=params)
            data = _json_data(answer, self.host)
            items = data.get("voice_list") or []
            voices.extend(
                Voice.from_json(i) for i in items if isinstance(i, Mapping) and i.get("voice_id")
            )
            if not data.get("has_more") or not items:
                break
        return voices

    def _headers(self) -> dict[str, str]:
        token = self._config.token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            raise RuntimeError("SpeechClient is not open: use 'async with SpeechClient(config)'")
        return self._session

    async def _exchange(
        self,
        method: str,
        path: str,
        *,
        json_body: dict[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> _Answer:
        """Send one request and read its whole answer; transport failures become ApiErrors."""
        session = self._open_session()
        url = self._config.url(path)
        started = time.monotonic()
        with _map_transport_errors(self.host, self._config.token) as progress:
            async with session.request(
                method,
                url,
                json=json_body,
                params=params,
                headers=self._headers(),
                # A redirect of a POST would be followed as a GET: report it instead.
                allow_redirects=False,
            ) as response:
                progress.headers_received = True
                body = await response.read()
                answer = _Answer(
                    status=response.status,
                    content_type=response.headers.get("Content-Type", ""),
                    headers=CIMultiDict(response.headers),
                    body=body,
                )
                _check_length(answer, response, self.host)
        log.debug(
            "%s %s%s -> HTTP %d, %s, %d bytes, logid %s, %.3f s",
            method,
            self.host,
            path,
            answer.status,
            _media_type(answer.content_type) or "no content type",
            len(answer.body),
            answer.logid,
            time.monotonic() - started,
        )
        return answer


def _check_length(answer: _Answer, response: aiohttp.ClientResponse, host: str) -> None:
    """A body shorter than its Content-Length is cut short, whatever the transport said."""
    declared = _as_int(response.headers.get("Content-Length"))
    if declared is None or response.headers.get("Content-Encoding"):
        return
    if len(answer.body) < declared:
        raise TransientApiError(
            CODE_SHORT_BODY,
            f"answer cut short: {len(answer.body)} of {declared} bytes",
            http_status=answer.status,
            logid=answer.logid,
            host=host,
        )
