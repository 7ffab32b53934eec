"""Coze-shaped answers: the JSON error body, its HTTP status, and the trace id.

Coze does not document the HTTP status of an error (clients must handle 200 and 4xx/5xx
alike); this server answers each code with the status a gateway would use:

| code | meaning | HTTP |
|---|---|---|
| 4000 | request parameter error (body, query, Content-Type) | 400 |
| 4100 | authentication invalid | 401 |
| 4101 | token lacks the permission | 403 |
| 4200 | resource not found (unknown voice) | 404 |
| 4009, 4020 | request limit / RPM peak | 429 |
| 5000 | internal server error | 500 |

A queued fault ``{"code": N, "http_status": S}`` overrides the status.
"""

from __future__ import annotations

import secrets
import time

from aiohttp import web

from pipeline.coze.protocol import LOGID_HEADER

_LOGID_KEY = web.RequestKey("logid", str)

HTTP_STATUS_OF_CODE = {
    4000: 400,
    4100: 401,
    4101: 403,
    4200: 404,
    4009: 429,
    4020: 429,
    5000: 500,
}

# Coze-like messages for codes that a queued fault may ask for without a "msg".
CODE_MESSAGES = {
    4000: "request parameter error",
    4008: "the daily usage limit of this user has been exceeded",
    4009: "the system request limit has been reached, please retry later",
    4011: "the balance of this account is insufficient",
    4013: "model service error, please retry later",
    4019: "this account is in arrears",
    4020: "the RPM peak of this account has been exceeded, please retry later",
    4022: "the balance of this account is insufficient",
    4100: "authentication is invalid",
    4101: "the token does not have the permission createSpeech",
    4102: "the request was blocked by risk control, please retry later",
    4200: "resource not found",
    5000: "internal server error",
}


def new_logid() -> str:
    """A Coze-like trace id: local time to the millisecond, then 18 random hex digits."""
    now = time.time()
    stamp = time.strftime("%Y%m%d%H%M%S", time.localtime(now))
    return f"{stamp}{int(now * 1000) % 1000:03d}{secrets.token_hex(9).upper()}"


def logid_of(request: web.BaseRequest) -> str:
    """The trace id of ``request``: made on first use, the same for its header and body."""
    logid = request.get(_LOGID_KEY)
    if logid is None:
        logid = new_logid()
        request[_LOGID_KEY] = logid
    return logid


async def add_logid_header(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """``on_response_prepare`` hook: every answer, aiohttp's own 404/405 too, gets the id."""
    response.headers[LOGID_HEADER] = logid_of(request)


def coze_error(
    request: web.BaseRequest,
    code: int,
    msg: str,
    *,
    http_status: int | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """``{"code", "msg", "detail": {"logid"}}`` with the status for ``code``."""
    status = http_status if http_status is not None else HTTP_STATUS_OF_CODE.get(code, 400)
    body = {"code": code, "msg": msg, "detail": {"logid": logid_of(request)}}
    return web.json_response(body, status=status, headers=headers)
