"""The pipeline's exception tree. Retry is decided by type, never by string matching.

PipelineError
  ConfigError              bad command line or settings; nothing was sent
    UsageError             a bad command line (the CLI's words; exit 2)
  ManifestError            bad input file(s); carries every Problem found
  AudioError               a part or chapter that cannot be read, joined or written
  ApiError                 carries code, message, http_status, logid, host
    TransientApiError      429, 5xx, 4009/4013/4020/4102/5000, reset, timeout, short body
      RateLimited          the server asked the whole run to slow down
      BadAudio             the answer claimed success but its audio does not check out
    RequestRejected        4000/4200 and other request errors: this request is wrong
    FatalApiError          4100/4101/4011/4019/4022/4008: the whole run must stop

Pipeline codes (negative: failures with no API code) sit next to the Coze codes below; a
report's chapter error carries one of them. No error ever carries the token: the client never
puts request headers into one. Advice naming flags and environment variables is the CLI's
(``pipeline.advice``), not this module's.
"""

from __future__ import annotations

from dataclasses import dataclass

# Coze codes (error-code page), grouped by what a batch client does with them.
RATE_LIMIT_CODES = frozenset({4009, 4013, 4020})
RETRY_CODES = frozenset({4102, 5000}) | RATE_LIMIT_CODES
REJECT_CODES = frozenset({4000, 4200})
AUTH_CODES = frozenset({4100, 4101})
BALANCE_CODES = frozenset({4011, 4019, 4022})
DAILY_LIMIT_CODE = 4008
FATAL_CODES = AUTH_CODES | BALANCE_CODES | {DAILY_LIMIT_CODE}
TRANSIENT_HTTP = frozenset({408, 429}) | frozenset(range(500, 600))

# Codes the pipeline itself gives to failures that have no API code.
CODE_NETWORK = -1  # connection refused/reset, DNS, TLS
CODE_TIMEOUT = -2  # connect or read timeout, stalled body
CODE_SHORT_BODY = -3  # fewer bytes than Content-Length, connection dropped mid-body
CODE_BAD_AUDIO = -4  # answered as audio, but it does not decode or is not what was asked
CODE_ASSEMBLY = -5  # the chunks were in, but the chapter file could not be written
CODE_BUDGET = -6  # the next request would cross the run's character budget
CODE_STORAGE = -7  # an answer was bought but could not be stored in the cache


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose."""


class ConfigError(PipelineError):
    """A bad command line or setting, found before anything was sent."""


class UsageError(ConfigError):
    """A bad command line: exit 2 with the message."""


class AudioError(PipelineError):
    """A part or chapter that cannot be read, joined or written (corrupt, inconsistent)."""


@dataclass(frozen=True)
class Problem:
    """One problem in an input file, printed as ``FILE:LINE: message``."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"


class ManifestError(PipelineError):
    """Every problem found in one pass over the input files."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ApiError(PipelineError):
    """An answer from the speech API (or the lack of one) that is not usable audio."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        http_status: int | None = None,
        logid: str | None = None,
        host: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.http_status = http_status
        self.logid = logid
        self.host = host
        self.retry_after = retry_after
        super().__init__(self._describe())

    def _describe(self) -> str:
        context = []
        if self.http_status is not None:
            context.append(f"HTTP {self.http_status}")
        if self.host:
            context.append(f"host {self.host}")
        if self.logid:
            context.append(f"logid {self.logid}")
        where = f" ({', '.join(context)})" if context else ""
        return f"code {self.code}: {self.message}{where}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, "
            f"http_status={self.http_status!r}, logid={self.logid!r}, host={self.host!r})"
        )

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments do not survive the default pickling of exceptions.
        return (
            _rebuild_api_error,
            (
                type(self),
                self.code,
                self.message,
                self.http_status,
                self.logid,
                self.host,
                self.retry_after,
            ),
        )


def _rebuild_api_error(
    cls: type[ApiError],
    code: int,
    message: str,
    http_status: int | None,
    logid: str | None,
    host: str | None,
    retry_after: float | None,
) -> ApiError:
    return cls(
        code, message, http_status=http_status, logid=logid, host=host, retry_after=retry_after
    )


class TransientApiError(ApiError):
    """Worth retrying with backoff: the same request may succeed later."""


class RateLimited(TransientApiError):
    """The server signalled rate limiting: retry, and slow the whole run down."""


class BadAudio(TransientApiError):
    """The server answered as audio, but the audio is empty, corrupt or not what was asked."""


class RequestRejected(ApiError):
    """This request is wrong (bad parameter, unknown voice): fail its chapter, not the run."""


class FatalApiError(ApiError):
    """Nothing more can succeed in this run (token refused, balance, daily limit)."""


class BudgetExhausted(FatalApiError):
    """The next request would cross the run's character budget: stop like a fatal answer."""


def error_class(code: int, http_status: int | None) -> type[ApiError]:
    """The class for an API error answer, from its Coze code and HTTP status.

    The code wins over the status: Coze may answer HTTP 200 or 4xx/5xx for the same code.
    An unknown code under a transient HTTP status is transient; otherwise it is a rejection
    of this request, which fails its chapter but lets the run go on.
    """
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
