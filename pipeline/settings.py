"""Every built-in default, once, and the one merge of run settings.

Precedence, most specific first: the command line, then the job file's ``run`` section, then
(for speech fields, in ``manifest.resolve``) the manifest's defaults, then the defaults here.
Which host a run talks to is decided in ``choose_target``: an explicit ``--backend``,
``--local`` or ``--base-url`` always beats the job file's ``run.backend``, so a job written
for the local server can still be sent to Coze (and billed) only when the user says so.
"""

from __future__ import annotations

import math
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
DEFAULT_FIT = "none"  # dubbing: a line longer than its cue is left as it is
DEFAULT_MAX_SPEED = 1.25  # dubbing: above ~1.2-1.3x speech sounds rushed
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


# ---------------------------------------------------------------- ranges
# Every number a user can give (command line or a job file's ``run`` section) is checked
# against one of these before anything starts: a value outside is a mistake, and some are
# costly ones (a million workers for one chunk, a pause of 1e300 s between requests).
# (low, high), both included; a float must also be finite.


@dataclass(frozen=True)
class Range:
    """The allowed values of one numeric setting, both ends included."""

    low: float
    high: float
    unit: str = ""

    def problem(self, value: float) -> str | None:
        """Why ``value`` is out of range (a phrase for a message), or None when it is fine."""
        if not math.isfinite(value):
            return f"must be a finite number, not {value}"
        if self.low <= value <= self.high:
            return None
        return f"must be {self.describe()}, not {_show(value)}"

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"from {_show(self.low)} to {_show(self.high)}{unit}"


def _show(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


QPS_RANGE = Range(0.01, 10_000, "requests/s")
CONCURRENCY_RANGE = Range(1, 256)
RETRIES_RANGE = Range(0, 100)
BURST_RANGE = Range(1, 1_000)
TIMEOUT_RANGE = Range(0.1, 3_600, "s")
MAX_CHUNK_BYTES_RANGE = Range(1, MAX_INPUT_BYTES, "bytes")
BUDGET_CHARACTERS_RANGE = Range(0, 10**12, "characters")
# The local server's knobs (serve-local).
PORT_RANGE = Range(0, 65_535)
LATENCY_MS_RANGE = Range(0, 600_000, "ms")
LATENCY_PER_BYTE_MS_RANGE = Range(0, 1_000, "ms")
FRACTION_RANGE = Range(0, 1)  # jitter, fault rate
MAX_IN_FLIGHT_RANGE = Range(1, 10_000)
SEED_RANGE = Range(0, 2**63 - 1)

# Option or job-file key -> its range: the one table the command line and job files use.
RANGES: dict[str, Range] = {
    "qps": QPS_RANGE,
    "concurrency": CONCURRENCY_RANGE,
    "retries": RETRIES_RANGE,
    "burst": BURST_RANGE,
    "timeout": TIMEOUT_RANGE,
    "max_chunk_bytes": MAX_CHUNK_BYTES_RANGE,
    "budget_characters": BUDGET_CHARACTERS_RANGE,
    "port": PORT_RANGE,
    "latency_ms": LATENCY_MS_RANGE,
    "latency_per_byte_ms": LATENCY_PER_BYTE_MS_RANGE,
    "jitter": FRACTION_RANGE,
    "fault_rate": FRACTION_RANGE,
    "max_in_flight": MAX_IN_FLIGHT_RANGE,
    "seed": SEED_RANGE,
}


def range_problem(name: str, value: float) -> str | None:
    """Why ``value`` is not allowed for setting ``name`` (a key of ``RANGES``), or None."""
    return RANGES[name].problem(value)

# Input files (manifests, job files, CSV, text_file): a regular file of at most this size.
MAX_INPUT_FILE_BYTES = 64 * 1024 * 1024
# A YAML file's values counted with every alias expanded: a manifest of a long book has tens
# of thousands; a "billion laughs" document of a few KB has billions.
MAX_YAML_NODES = 1_000_000
