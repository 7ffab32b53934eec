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
repr, a log line or an exception message. Server text enters at one place, :class:`_Answer`:
its header values, its parsed JSON and its text snippet pass through
:meth:`~pipeline.redact.Redactor.clean` (the token removed, control characters escaped)
before anything reads them, so errors, reports and voice lists are clean whatever a server
echoes. Answer sizes and waits are bounded by :mod:`pipeline.bounds`.
"""

from __future__ import annotations

import html
import ipaddress
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

from pipeline.bounds import (
    ERROR_BODY_LIMIT,
    JSON_BODY_LIMIT,
    BodyTooLarge,
    audio_body_limit,
    parse_retry_after,
    read_body,
)
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
from pipeline.redact import Redactor, check_token
from pipeline.speech import SpeechRequest

__all__ = [
    "DEFAULT_BASE_URL",
    "ClientConfig",
    "SpeechClient",
    "Synthesis",
    "Voice",
    "parse_retry_after",
]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.coze.cn"
SPEECH_PATH = "/v1/audio/speech"
VOICES_PATH = "/v1/audio/voices"
VOICES_PAGE_SIZE = 100
# A server that keeps saying has_more would otherwise keep the client paging forever.
MAX_VOICE_PAGES = 1000
# Bounds on what a voice list may hold in memory, whatever the server keeps sending.
MAX_VOICES = 10_000
MAX_VOICE_FIELD_CHARS = 1000
MAX_VOICE_EMOTIONS = 50
MESSAGE_CHARS = 200
# A server message longer than this is cut: it is for a report line, not a document.
MAX_MESSAGE_CHARS = 500
# Without a total timeout, one exchange may last this many read timeouts (plus the connect):
# a body dripped a byte at a time never trips the read timeout alone.
EXCHANGE_READS = 10
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
        # CI secrets often end with a newline; a token with one inside is refused, unshown.
        object.__setattr__(self, "token", check_token(self.token))
        check_base_url(self.base_url, Redactor(self.token))
        for name in ("connect_timeout", "read_timeout", "total_timeout"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be a positive number of seconds, not {value!r}")

    @property
    def host(self) -> str:
        """Scheme, host and (non-default) port of the base URL: what errors and reports name."""
        return str(URL(self.base_url).origin())

    @property
    def exchange_timeout(self) -> float:
        """The longest one exchange may take, connect to last byte."""
        if self.total_timeout is not None:
            return self.total_timeout
        return self.connect_timeout + EXCHANGE_READS * self.read_timeout

    def url(self, path: str) -> str:
        return str(URL(self.base_url.rstrip("/") + path))


def check_base_url(base_url: str, redactor: Redactor | None = None) -> str:
    """``base_url`` when it is a usable http(s) URL; a one-line ConfigError otherwise."""
    shown = "'" + (redactor or Redactor()).clean(base_url[:200]) + "'"
    try:
        url = URL(base_url)
        port, host = url.port, url.host
    except (ValueError, TypeError) as e:
        raise ConfigError(f"base URL {shown} is not a valid URL: {e}") from None
    if url.scheme not in ("http", "https") or not host:
        raise ConfigError(f"base URL {shown} is not an http(s) URL with a host")
    if url.user is not None or url.password is not None:
        # Credentials in the URL would end up in messages; the token has its own field.
        raise ConfigError("the base URL must not carry credentials; pass the token instead")
    if port is None or not 0 < port < 65536:
        raise ConfigError(f"base URL {shown} has a port out of range (1 to 65535)")
    if not _valid_host(host):
        raise ConfigError(f"base URL {shown} has a malformed host {host[:100]!r}")
    return base_url


def _valid_host(host: str) -> bool:
    if ":" in host:  # an IPv6 literal, perhaps with a zone
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return False
        return True
    # yarl has made an internationalised name ASCII (punycode) already.
    return re.fullmatch(r"[A-Za-z0-9._-]{1,253}", host) is not None


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
        listed = item.get("support_emotions")
        emotions = tuple(
            _voice_field(e["emotion"])
            for e in (listed if isinstance(listed, list) else ())[:MAX_VOICE_EMOTIONS]
            if isinstance(e, Mapping) and e.get("emotion")
        )
        return cls(
            voice_id=_voice_field(item["voice_id"]),
            name=_voice_field(item.get("name")),
            language_code=_voice_field(item.get("language_code")),
            language_name=_voice_field(item.get("language_name")),
            model_type=_voice_field(item.get("model_type")),
            state=_voice_field(item.get("state")),
            is_system_voice=bool(item.get("is_system_voice")),
            preview_text=_voice_field(item.get("preview_text")),
            preview_audio=_voice_field(item.get("preview_audio")),
            emotions=emotions,
        )


def _voice_field(value: object) -> str:
    # The value was cleaned when the answer was parsed; this only bounds its length.
    return str(value or "")[:MAX_VOICE_FIELD_CHARS]


@dataclass(frozen=True)
class _Answer:
    """A complete HTTP answer (an error body possibly cut): what the interpreting functions see.

    The one door for server text: header values are cleaned when the answer is made, and the
    body is read as text only through :meth:`payload` and :meth:`snippet`, which clean it.
    """

    status: int
    content_type: str
    headers: Mapping[str, str]
    body: bytes
    redactor: Redactor = field(repr=False)

    @classmethod
    def make(
        cls, response: aiohttp.ClientResponse, body: bytes, redactor: Redactor
    ) -> _Answer:
        headers = CIMultiDict((k, redactor.clean(v)) for k, v in response.headers.items())
        return cls(response.status, headers.get("Content-Type", ""), headers, body, redactor)

    @property
    def logid(self) -> str | None:
        return self.headers.get(LOGID_HEADER) or None

    def payload(self) -> dict[str, Any] | None:
        """The body as a JSON object with every string cleaned, or None when it is not one."""
        value = _json_object(self.body)
        return None if value is None else dict(self.redactor.clean_json(value))

    def snippet(self) -> str:
        """The first words of an HTML or text body, cleaned."""
        return _text_snippet(self.body, self.redactor)


# ---------------------------------------------------------------------------------------------
# Third-party exceptions -> pipeline errors (the one place)


class _Progress:
    """How far one exchange got: a connection lost after the headers cut the body short."""

    headers_received = False


@contextmanager
def _map_transport_errors(host: str, redactor: Redactor) -> Iterator[_Progress]:
    """Turn aiohttp and socket exceptions raised inside the block into ApiErrors."""
    progress = _Progress()
    try:
        yield progress
    except ApiError:
        raise
    except TimeoutError as exc:  # aiohttp's ServerTimeoutError is one too: check it first
        phase = "reading the answer" if progress.headers_received else "waiting for an answer"
        raise _transport_error(CODE_TIMEOUT, f"timed out {phase}", exc, host, redactor) from None
    except aiohttp.ClientPayloadError as exc:
        raise _transport_error(CODE_SHORT_BODY, "answer cut short", exc, host, redactor) from None
    except (aiohttp.ClientConnectionError, OSError) as exc:
        if progress.headers_received:
            what, code = "connection lost while reading the answer", CODE_SHORT_BODY
        else:
            what, code = "connection failed", CODE_NETWORK
        raise _transport_error(code, what, exc, host, redactor) from None
    except aiohttp.ClientError as exc:
        raise _transport_error(CODE_NETWORK, "HTTP client error", exc, host, redactor) from None


def _transport_error(
    code: int, what: str, exc: BaseException, host: str, redactor: Redactor
) -> TransientApiError:
    # aiohttp's parser errors quote the bytes of a bad answer, which a hostile server fills
    # with the token: the detail is cleaned, and the original is not chained (``from None``)
    # so that no traceback shows it.
    detail = redactor.clean(" ".join(str(exc).split()))[:MAX_MESSAGE_CHARS]
    message = f"{what}: {type(exc).__name__}" + (f": {detail}" if detail else "")
    return TransientApiError(code, message, host=host)


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
    except (UnicodeDecodeError, ValueError, RecursionError):
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


def _text_snippet(body: bytes, redactor: Redactor) -> str:
    """The first words of an HTML or text body, without tags: enough to tell what answered.

    Entities and JSON escapes are decoded and the token removed before the text is cut, so
    that neither an encoded token nor the start of one survives.
    """
    text = redactor.redact_cut(body[: MESSAGE_CHARS * 20].decode("utf-8", errors="replace"))
    text = re.sub(r"(?is)<(script|style)\b.*?</\1\s*>", " ", text)
    text = re.sub(r"(?s)<[^>]*>", " ", text)
    text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
    text = redactor.clean(" ".join(html.unescape(text).split()))
    return text[:MESSAGE_CHARS]


def _api_error(answer: _Answer, code: int, message: str, logid: str | None, host: str) -> ApiError:
    cls = error_class(code, answer.status)
    return cls(
        code,
        message[:MAX_MESSAGE_CHARS],
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
    snippet = answer.snippet()
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
    payload = answer.payload()
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
    payload = answer.payload()
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
        self._redactor = Redactor(config.token)
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

    @property
    def redactor(self) -> Redactor:
        """What cleans text of this client's token: for callers printing outside text."""
        return self._redactor

    async def __aenter__(self) -> Self:
        config = self._config
        timeout = aiohttp.ClientTimeout(
            total=config.exchange_timeout,
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
        body = request.body()
        if any(isinstance(v, str) and self._redactor.found_in(v) for v in body.values()):
            # A text that read the environment (text_file: /proc/self/environ) would send the
            # token to be spoken, billed and written into subtitles.
            problems.append(
                "the request's text contains the API token; it was not sent (does a "
                "text_file read the environment or a secrets file?)"
            )
        if problems:
            raise RequestRejected(4000, self._redactor.clean("; ".join(problems)), host=self.host)
        limit = audio_body_limit(request)
        answer = await self._exchange("POST", SPEECH_PATH, limit, audio=True, json_body=body)
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
            answer = await self._exchange("GET", VOICES_PATH, JSON_BODY_LIMIT, params=params)
            data = _json_data(answer, self.host)
            listed = data.get("voice_list")
            items = listed if isinstance(listed, list) else []
            voices.extend(
                Voice.from_json(i) for i in items if isinstance(i, Mapping) and i.get("voice_id")
            )
            if not data.get("has_more") or not items or len(voices) >= MAX_VOICES:
                break
        return voices[:MAX_VOICES]

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
        limit: int,
        *,
        audio: bool = False,
        json_body: dict[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> _Answer:
        """Send one request and read its answer; transport failures become ApiErrors.

        A successful answer (HTTP 200, and audio when ``audio``) is read whole up to ``limit``
        bytes and refused beyond; any other is an error, read up to ``ERROR_BODY_LIMIT``.
        """
        session = self._open_session()
        url = self._config.url(path)
        started = time.monotonic()
        with _map_transport_errors(self.host, self._redactor) as progress:
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
                media = _media_type(response.headers.get("Content-Type", ""))
                success = response.status == 200 and (_is_audio_type(media) or not audio)
                try:
                    body, cut = await read_body(
                        response, limit if success else ERROR_BODY_LIMIT, cut=not success
                    )
                except BodyTooLarge as e:
                    raise _too_large(_Answer.make(response, b"", self._redactor), e, audio,
                                     self.host) from None
                answer = _Answer.make(response, body, self._redactor)
                if not cut:
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


def _too_large(answer: _Answer, error: BodyTooLarge, audio: bool, host: str) -> ApiError:
    what = "audio answer" if audio else "answer"
    cls = BadAudio if audio else RequestRejected
    return cls(
        CODE_BAD_AUDIO if audio else answer.status,
        f"{what} larger than {error.limit} bytes, the most this request can need; "
        "the rest was not read",
        http_status=answer.status,
        logid=answer.logid,
        host=host,
    )


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
