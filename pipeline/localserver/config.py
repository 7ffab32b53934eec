"""The local server's knobs: one frozen dataclass, checked when it is made."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.errors import ConfigError

ENGINES = ("tone", "espeak")

# What each kind does at the HTTP level is in faults.py.
FAULT_KINDS = (
    "http500",
    "json200",
    "html502",
    "rate429",
    "rate429_bare",
    "short_body",
    "reset_before",
    "reset_during",
    "stall",
    "bad_audio",
)
# Valid audio that is wrong (issue 17's quality gate catches them); not in the default draw,
# which stays the transport and API faults above. What each does is in faults.py.
QUALITY_FAULT_KINDS = ("silent", "truncated", "padded", "clipped", "quiet")
ALL_FAULT_KINDS = FAULT_KINDS + QUALITY_FAULT_KINDS


@dataclass(frozen=True)
class ServerConfig:
    """How the local server binds, synthesizes, limits and misbehaves.

    ``token``: when set, only ``Authorization: Bearer <token>`` passes; when None, any bearer
    token does. ``qps``/``burst``: a token bucket over speech requests (HTTP 429, code 4009).
    ``max_in_flight``: concurrent speech requests (HTTP 429, code 4020). Latency of an answer is
    ``latency_ms + latency_per_byte_ms * UTF-8 bytes of input``, times a uniform factor in
    ``1 +- jitter``. ``fault_rate`` is the probability that a speech request gets a fault drawn
    from ``fault_kinds``; ``seed`` makes both draws repeatable.
    """

    host: str = "127.0.0.1"
    port: int = 0
    engine: str = "tone"
    token: str | None = field(default=None, repr=False)
    qps: float | None = None
    burst: int = 1
    max_in_flight: int | None = None
    latency_ms: float = 0.0
    latency_per_byte_ms: float = 0.0
    jitter: float = 0.0
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    seed: int = 0
    stall_s: float = 30.0

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ConfigError("local server: " + "; ".join(problems))

    def problems(self) -> list[str]:
        """Every value that the server cannot run with, in words."""
        found: list[str] = []
        if self.engine not in ENGINES:
            found.append(f"engine {self.engine!r} is not one of {', '.join(ENGINES)}")
        if not 0 <= self.port <= 65535:
            found.append(f"port {self.port} is out of range 0 to 65535")
        if self.qps is not None and self.qps <= 0:
            found.append(f"qps {self.qps:g} must be above 0")
        if self.burst < 1:
            found.append(f"burst {self.burst} must be at least 1")
        if self.max_in_flight is not None and self.max_in_flight < 1:
            found.append(f"max_in_flight {self.max_in_flight} must be at least 1")
        if min(self.latency_ms, self.latency_per_byte_ms, self.stall_s) < 0:
            found.append("latency_ms, latency_per_byte_ms and stall_s must not be negative")
        if not 0 <= self.jitter <= 1:
            found.append(f"jitter {self.jitter:g} is out of range 0 to 1")
        if not 0 <= self.fault_rate <= 1:
            found.append(f"fault_rate {self.fault_rate:g} is out of range 0 to 1")
        unknown = [k for k in self.fault_kinds if k not in ALL_FAULT_KINDS]
        if unknown:
            known = ", ".join(ALL_FAULT_KINDS)
            found.append(f"fault_kinds has unknown {unknown}; known: {known}")
        if self.fault_rate > 0 and not self.fault_kinds:
            found.append("fault_rate is above 0 but fault_kinds is empty")
        return found
