"""Coze's error codes (the error-code page) and what a batch client does with each.

The code wins over the HTTP status: Coze may answer HTTP 200 or 4xx/5xx for the same code.
The classes are the error tree's (``pipeline.errors``); the retry policy retries by class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.errors import ApiError

RATE_LIMIT_CODES = frozenset({4009, 4013, 4020})
RETRY_CODES = frozenset({4102, 5000}) | RATE_LIMIT_CODES
REJECT_CODES = frozenset({4000, 4200})
AUTH_CODES = frozenset({4100, 4101})
BALANCE_CODES = frozenset({4011, 4019, 4022})
DAILY_LIMIT_CODE = 4008
FATAL_CODES = AUTH_CODES | BALANCE_CODES | {DAILY_LIMIT_CODE}
TRANSIENT_HTTP = frozenset({408, 429}) | frozenset(range(500, 600))


def error_class(code: int, http_status: int | None) -> type[ApiError]:
    """The class for an API error answer, from its Coze code and HTTP status.

    The code wins over the status: Coze may answer HTTP 200 or 4xx/5xx for the same code.
    An unknown code under a transient HTTP status is transient; otherwise it is a rejection
    of this request, which fails its chapter but lets the run go on.
    """
    from pipeline.errors import (
        FatalApiError,
        RateLimited,
        RequestRejected,
        TransientApiError,
    )

    if code in FATAL_CODES:
        return FatalApiError
    if code in RATE_LIMIT_CODES or http_status == 429:
        return RateLimited
    if code in RETRY_CODES:
        return TransientApiError
    if code in REJECT_CODES:
        return RequestRejected
    if http_status is not None and http_status in TRANSIENT_HTTP:
        return TransientApiError
    return RequestRejected
