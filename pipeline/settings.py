"""Every built-in default, once, and the one merge of run settings.

Precedence, most specific first: the command line, then the job file's ``run`` section, then
(for speech fields, in ``manifest.resolve``) the manifest's defaults, then the defaults here.
Which host a run talks to is decided in ``choose_target``: an explicit ``--backend``,
``--local`` or ``--base-url`` always beats the job file's ``run.backend``, so a job written
for the local server can still be sent to Coze (and billed) only when the user says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

from pipeline.errors import ConfigError
from pipeline.speech import MAX_INPUT_BYTES

DEFAULT_BASE_URL = "https://api.coze.cn"
DEFAULT_QPS = 5.0
DEFAULT_BURST = 1
DEFAULT_CONCURRENCY = 4
DEFAULT_RETRIES = 6
DEFAULT_PAUSE_MS = 300
DEFAULT_TIMEOUT = 60.0  # seconds without a byte of the answer
DEFAULT_MAX_CHUNK_BYTES = MAX_INPUT_BYTES
BACKENDS = ("coze", "local")
LOCAL_ENGINES = ("espeak", "tone")
DEFAULT_ENGINE = "espeak"
LOCAL_DEFAULT_VOICES = {"espeak": "local-zh-female", "tone": "local-tone-1"}
_DEFAULT_PORTS = {"http": 80, "https": 443}
LOCAL_SCHEME = "local"
T = TypeVar("T")


def host_id(base_url: str) -> str:
    """``scheme://host[:port]`` in lower case: how reports, errors and cache keys name a host.

    User info, path, query and fragment are dropped; so is the scheme's default port.
    """
    parts = urlsplit(base_url.strip())
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        raise ConfigError(f"base URL {base_url!r} is not an http(s) URL with a host")
    scheme = parts.scheme.lower()
    host = url_host(parts.hostname.lower())
    try:
        port = parts.port
    except ValueError as e:
        raise ConfigError(f"base URL {base_url!r} has a bad port") from e
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def url_host(host: str) -> str:
    """``host`` as a URL spells it: an IPv6 literal goes in brackets."""
    return f"[{host}]" if ":" in host else host


def local_host_id(engine: str) -> str:
    """How reports, errors and cache keys name the embedded local server with ``engine``."""
    return f"{LOCAL_SCHEME}://{engine}"


def normalise_base_url(base_url: str) -> str:
    """The base URL as requests use it: checked, without a trailing slash."""
    host_id(base_url)  # raises ConfigError when it is not an http(s) URL
    return base_url.strip().rstrip("/")


@dataclass(frozen=True)
class Target:
    """Where requests go: a Coze host with a token, or the embedded local server."""

    local: bool
    base_url: str
    token: str = field(default="", repr=False)
    engine: str = DEFAULT_ENGINE

    @property
    def host_id(self) -> str:
        return local_host_id(self.engine) if self.local else host_id(self.base_url)


@dataclass(frozen=True)
class TargetChoice:
    """What the caller asked for; None = not said (the job file or a default decides)."""

    backend: str | None = None  # "coze" or "local"
    base_url: str | None = None  # an explicit base URL (the command line's --base-url)
    fallback_base_url: str | None = None  # beats the job file's URL, not its backend ($ env)
    engine: str = DEFAULT_ENGINE


def choose_backend(choice: TargetChoice, job_backend: str | None) -> str:
    """``coze`` or ``local``: an explicit backend or base URL beats the job file."""
    if choice.backend is not None:
        if choice.backend not in BACKENDS:
            raise ConfigError(f"backend must be coze or local, not {choice.backend!r}")
        return choice.backend
    if choice.base_url is not None:
        return "coze"
    return job_backend or "coze"


def choose_target(
    choice: TargetChoice, job_backend: str | None, job_base_url: str | None, token: str
) -> Target:
    """The target: explicit choice > job file's ``run`` > ``DEFAULT_BASE_URL``."""
    if choose_backend(choice, job_backend) == "local":
        return Target(local=True, base_url="", token="local", engine=choice.engine)
    url = pick(choice.base_url, pick(choice.fallback_base_url, job_base_url, None), None)
    url = url or DEFAULT_BASE_URL
    return Target(local=False, base_url=normalise_base_url(url), token=token)


class RunSection(Protocol):
    """A job file's ``run`` section (``manifest.RunSettings``): None = not set."""

    @property
    def qps(self) -> float | None: ...
    @property
    def concurrency(self) -> int | None: ...
    @property
    def retries(self) -> int | None: ...
    @property
    def max_chunk_bytes(self) -> int | None: ...


def pick(command_line: T | None, job_file: T | None, default: T) -> T:
    """The merge rule for one setting: the command line, else the job file, else the default."""
    if command_line is not None:
        return command_line
    return job_file if job_file is not None else default


@dataclass(frozen=True)
class RunValues:
    """The merged numbers of a run."""

    qps: float = DEFAULT_QPS
    concurrency: int = DEFAULT_CONCURRENCY
    retries: int = DEFAULT_RETRIES
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES


def merge_run(
    job: RunSection,
    *,
    qps: float | None = None,
    concurrency: int | None = None,
    retries: int | None = None,
    max_chunk_bytes: int | None = None,
) -> RunValues:
    """Command-line values (keywords) over the job file's ``run`` section over the defaults."""
    return RunValues(
        qps=float(pick(qps, job.qps, DEFAULT_QPS)),
        concurrency=pick(concurrency, job.concurrency, DEFAULT_CONCURRENCY),
        retries=pick(retries, job.retries, DEFAULT_RETRIES),
        max_chunk_bytes=pick(max_chunk_bytes, job.max_chunk_bytes, DEFAULT_MAX_CHUNK_BYTES),
    )
