"""The pipeline's exception tree. Retry is decided by type, never by string matching.

PipelineError
  ConfigError              bad command line or settings; nothing was sent
    UsageError             a bad command line (the CLI's words; exit 2)
  StorageError             a file we write cannot be written (also an OSError, with errno)
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

# The Coze code tables and their classification live with the rest of the Coze contract.
from pipeline.coze.codes import (
    AUTH_CODES as AUTH_CODES,
)
from pipeline.coze.codes import (
    BALANCE_CODES as BALANCE_CODES,
)
from pipeline.coze.codes import (
    DAILY_LIMIT_CODE as DAILY_LIMIT_CODE,
)
from pipeline.coze.codes import (
    FATAL_CODES as FATAL_CODES,
)
from pipeline.coze.codes import (
    RATE_LIMIT_CODES as RATE_LIMIT_CODES,
)
from pipeline.coze.codes import (
    REJECT_CODES as REJECT_CODES,
)
from pipeline.coze.codes import (
    RETRY_CODES as RETRY_CODES,
)
from pipeline.coze.codes import (
    TRANSIENT_HTTP as TRANSIENT_HTTP,
)
from pipeline.coze.codes import (
    error_class as error_class,
)

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


class StorageError(PipelineError, OSError):
    """A file or folder we write cannot be written: disk full, read-only, no permission, or a
    symbolic link, folder or other non-file where a file belongs. ``str()`` is one line naming
    the path, the reason and the fix. Also an OSError (``errno`` set), so code that handles
    OSError from plain file calls handles this one too."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)

    def __str__(self) -> str:
        return str(self.strerror)
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
