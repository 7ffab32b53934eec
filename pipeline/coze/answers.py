"""Coze answers read and interpreted: audio, a JSON ``data`` object, or the ApiError they are.

The one door for server text is :class:`Answer`: its header values, its parsed JSON and its
text snippet pass through :meth:`~pipeline.redact.Redactor.clean` (the token removed, control
characters escaped) before anything reads them. Everything here is a pure function of an
answer except :func:`read_answer`, which reads a body within the bounds of
:mod:`pipeline.bounds`; aiohttp's own exceptions are turned into ApiErrors by the client
around it, not here.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict

from pipeline.bounds import ERROR_BODY_LIMIT, BodyTooLarge, parse_retry_after, read_body
from pipeline.coze.protocol import LOGID_HEADER
from pipeline.errors import (
    CODE_BAD_AUDIO,
    CODE_SHORT_BODY,
    ApiError,
    BadAudio,
    RequestRejected,
    TransientApiError,
    error_class,
)
from pipeline.redact import Redactor
from pipeline.speech import SpeechRequest

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "MAX_MESSAGE_CHARS",
    "Answer",
    "Synthesis",
    "json_data",
    "media_type",
    "read_answer",
    "speech_result",
]

MESSAGE_CHARS = 200
# A server message longer than this is cut: it is for a report line, not a document.
MAX_MESSAGE_CHARS = 500


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
class Answer:
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
    ) -> Answer:
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


async def read_answer(
    response: aiohttp.ClientResponse, limit: int, *, audio: bool, redactor: Redactor, host: str
) -> Answer:
    """The whole answer: a success (HTTP 200, and audio when ``audio``) up to ``limit`` bytes
    and refused beyond; anything else is an error body, read up to ``ERROR_BODY_LIMIT``."""
    media = media_type(response.headers.get("Content-Type", ""))
    success = response.status == 200 and (_is_audio_type(media) or not audio)
    try:
        body, cut = await read_body(
            response, limit if success else ERROR_BODY_LIMIT, cut=not success
        )
    except BodyTooLarge as e:
        raise _too_large(Answer.make(response, b"", redactor), e, audio, host) from None
    answer = Answer.make(response, body, redactor)
    if not cut:
        _check_length(answer, response, host)
    return answer


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _is_audio_type(media: str) -> bool:
    return media.startswith("audio/") or media == "application/octet-stream"


def _is_json_type(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


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


def _api_error(answer: Answer, code: int, message: str, logid: str | None, host: str) -> ApiError:
    cls = error_class(code, answer.status)
    return cls(
        code,
        message[:MAX_MESSAGE_CHARS],
        http_status=answer.status,
        logid=logid or answer.logid,
        host=host,
        retry_after=parse_retry_after(answer.headers.get("Retry-After")),
    )


def _json_answer_error(answer: Answer, payload: Mapping[str, Any], host: str) -> ApiError | None:
    """The error a JSON answer carries, or None when it says success (code 0 under HTTP 2xx)."""
    code, message, logid = _json_error_fields(payload)
    if code == 0 and answer.status < 400:
        return None
    if code is None or code == 0:
        code = answer.status
    if not message:
        message = f"HTTP {answer.status} with an error body and no message"
    return _api_error(answer, code, message, logid, host)


def _non_json_error(answer: Answer, host: str) -> ApiError:
    snippet = answer.snippet()
    media = media_type(answer.content_type) or "no content type"
    message = snippet or f"HTTP {answer.status} with an empty {media} body"
    location = answer.headers.get("Location")
    if 300 <= answer.status < 400 and location:
        message = f"redirected to {location}; use that as the base URL"
    if answer.status < 400:
        message = f"not audio ({media}): {message}"
    return _api_error(answer, answer.status, message, None, host)


def speech_result(answer: Answer, request: SpeechRequest, host: str) -> Synthesis:
    """The audio of a speech answer, or the error it is."""
    media = media_type(answer.content_type)
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


def json_data(answer: Answer, host: str) -> Mapping[str, Any]:
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


def _too_large(answer: Answer, error: BodyTooLarge, audio: bool, host: str) -> ApiError:
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


def _check_length(answer: Answer, response: aiohttp.ClientResponse, host: str) -> None:
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
