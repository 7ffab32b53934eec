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
repr, a log line or an exception message. Server text enters at one place,
:class:`~pipeline.coze.answers.Answer`: its header values, its parsed JSON and its text snippet
pass through :meth:`~pipeline.redact.Redactor.clean` (the token removed, control characters
escaped) before anything reads them, so errors, reports and voice lists are clean whatever a
server echoes. Answer sizes and waits are bounded by :mod:`pipeline.bounds`; answers are read
and interpreted in :mod:`pipeline.coze.answers`.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import aiohttp
from yarl import URL

from pipeline.bounds import JSON_BODY_LIMIT, audio_body_limit, parse_retry_after
from pipeline.coze.answers import (
    MAX_MESSAGE_CHARS,
    Answer,
    Synthesis,
    json_data,
    media_type,
    read_answer,
    speech_result,
)
from pipeline.coze.protocol import SPEECH_PATH, VOICES_PATH
from pipeline.errors import (
    CODE_NETWORK,
    CODE_SHORT_BODY,
    CODE_TIMEOUT,
    ApiError,
    ConfigError,
    RequestRejected,
    TransientApiError,
)
from pipeline.redact import Redactor, check_token
from pipeline.settings import DEFAULT_BASE_URL
from pipeline.speech import SpeechRequest
from pipeline.version import VERSION

__all__ = [
    "DEFAULT_BASE_URL",
    "ClientConfig",
    "SpeechClient",
    "Synthesis",
    "Voice",
    "parse_retry_after",
]

log = logging.getLogger(__name__)

VOICES_PAGE_SIZE = 100
# A server that keeps saying has_more would otherwise keep the client paging forever.
MAX_VOICE_PAGES = 1000
# Bounds on what a voice list may hold in memory, whatever the server keeps sending.
MAX_VOICES = 10_000
MAX_VOICE_FIELD_CHARS = 1000
MAX_VOICE_EMOTIONS = 50
# Without a total timeout, one exchange may last this many read timeouts (plus the connect):
# a body dripped a byte at a time never trips the read timeout alone.
EXCHANGE_READS = 10


DEFAULT_USER_AGENT = f"tts-pipeline/{VERSION}"


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
        return speech_result(answer, request, self.host)

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
            data = json_data(answer, self.host)
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
    ) -> Answer:
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
                answer = await read_answer(
                    response, limit, audio=audio, redactor=self._redactor, host=self.host
                )
        log.debug(
            "%s %s%s -> HTTP %d, %s, %d bytes, logid %s, %.3f s",
            method,
            self.host,
            path,
            answer.status,
            media_type(answer.content_type) or "no content type",
            len(answer.body),
            answer.logid,
            time.monotonic() - started,
        )
        return answer
