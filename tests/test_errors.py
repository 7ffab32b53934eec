"""The error tree: classification by code and status, and no token in any text."""

import pickle

import pytest

from pipeline.advice import fatal_advice
from pipeline.errors import (
    ApiError,
    FatalApiError,
    Problem,
    RateLimited,
    RequestRejected,
    TransientApiError,
    error_class,
)


@pytest.mark.parametrize(
    ("code", "status", "cls"),
    [
        (4000, 400, RequestRejected),
        (4000, 200, RequestRejected),
        (4200, 404, RequestRejected),
        (4100, 401, FatalApiError),
        (4100, 200, FatalApiError),
        (4101, 403, FatalApiError),
        (4011, 200, FatalApiError),
        (4019, 200, FatalApiError),
        (4022, 200, FatalApiError),
        (4008, 429, FatalApiError),
        (4009, 429, RateLimited),
        (4009, 200, RateLimited),
        (4013, 200, RateLimited),
        (4020, 200, RateLimited),
        (4102, 200, TransientApiError),
        (5000, 500, TransientApiError),
        (5000, 200, TransientApiError),
        (12345, 429, RateLimited),
        (503, 503, TransientApiError),
        (408, 408, TransientApiError),
        (12345, 400, RequestRejected),
    ],
)
def test_error_class(code: int, status: int, cls: type[ApiError]) -> None:
    assert error_class(code, status) is cls


def test_daily_limit_is_fatal_not_rate_limited() -> None:
    # 4008 is a daily quota: retrying only burns requests until tomorrow.
    assert not issubclass(error_class(4008, 429), TransientApiError)


def test_api_error_text_keeps_code_logid_and_host() -> None:
    error = RequestRejected(4000, "speed is out of range", http_status=400, logid="L1",
                            host="https://api.coze.cn")
    text = str(error)
    assert "4000" in text and "L1" in text and "api.coze.cn" in text
    assert "L1" in repr(error)


def test_api_error_pickles_with_its_fields() -> None:
    error = RateLimited(4009, "slow down", http_status=429, logid="x", retry_after=2.5)
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is RateLimited
    assert (again.code, again.retry_after, again.logid) == (4009, 2.5, "x")


def test_fatal_advice_names_host_and_variable() -> None:
    advice = fatal_advice(FatalApiError(4100, "bad token", host="https://api.coze.com"))
    assert "https://api.coze.com" in advice
    assert "COZE_API_TOKEN" in advice
    assert "coze.cn token does not work on api.coze.com" in advice
    daily = fatal_advice(FatalApiError(4008, "daily limit", host="h"))
    assert "tomorrow" in daily


def test_problem_format() -> None:
    assert str(Problem("a.yaml", 3, "bad")) == "a.yaml:3: bad"
    assert str(Problem("a.yaml", None, "bad")) == "a.yaml: bad"
