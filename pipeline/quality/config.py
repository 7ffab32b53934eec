"""The job's ``quality:`` settings: one frozen dataclass, and its parser with FILE:LINE problems.

Defaults and why (measured with ``python -m bench.quality_gate`` on the espeak voices over
Holmes, 三国演义 and 西游记 chapters, about 1,000 chunks): every threshold sits outside what
real speech did and inside what a broken answer does. On that speech the loudness of a chunk
stayed within 3 LU of its chapter's median (jump: 6 LU; the quiet fault is -20 dB), the
longest inner silence under 0.5 s (gap: 3 s; the padded fault is 5 s), edge silences under
0.35 s (2.5 s), no sample clipped (0.2 %), and the speech time within 0.73x-1.5x of the
learnt pace; the duration band [0.72, 1.5], widened for short texts, left 13 % between the
lowest clean chunk and its bound and caught 88 % of half-text answers (all the long ones).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pipeline.errors import Problem


@dataclass(frozen=True)
class QualityConfig:
    """What the gate refuses; ``enabled=False`` is ``quality: off``.

    Duration: an answer's speech time (first sound to last) over the time predicted for its
    text at its ``speed`` must lie in [duration_low, duration_high] once the voice has
    ``warmup_chunks`` accepted chunks, in [prior_low, prior_high] before (the prior is a
    guess about an unknown voice). Both ranges widen for short texts, whose time varies
    more: each bound is raised to the power ``1 + short_text_units / units`` (a text of
    ``short_text_units`` units gets the square of the range). Texts under ``min_units``
    syllables are not timed at all.
    """

    enabled: bool = True
    retries: int = 1
    strict: bool = False
    duration_low: float = 0.72
    duration_high: float = 1.5
    prior_low: float = 0.2
    prior_high: float = 4.0
    warmup_chunks: int = 5
    min_units: int = 6
    short_text_units: float = 6.0
    silent_dbfs: float = -50.0
    max_gap_s: float = 3.0
    max_edge_silence_s: float = 2.5
    max_clipped_share: float = 0.002
    loudness_jump_lu: float = 6.0
    min_loudness_lufs: float = -40.0
    max_loudness_lufs: float = -5.0


OFF = QualityConfig(enabled=False)

# Each key: its kind ("int", "float" or "bool"), its test, and the rule in words.
_Check = tuple[str, Callable[[float], bool], str]
_ABOVE_0: _Check = ("float", lambda v: v > 0, "a number above 0")
_UNDER_1: _Check = ("float", lambda v: 0 < v < 1, "a number between 0 and 1")
_OVER_1: _Check = ("float", lambda v: v > 1, "a number above 1")
_LEVEL: _Check = ("float", lambda v: -120 <= v <= 0, "a level from -120 to 0")
_CHECKS: dict[str, _Check] = {
    "enabled": ("bool", lambda v: True, "true or false"),
    "strict": ("bool", lambda v: True, "true or false"),
    "retries": ("int", lambda v: 0 <= v <= 5, "a whole number from 0 to 5"),
    "duration_low": _UNDER_1,
    "duration_high": _OVER_1,
    "prior_low": _UNDER_1,
    "prior_high": _OVER_1,
    "warmup_chunks": ("int", lambda v: 1 <= v <= 1000, "a whole number from 1 to 1000"),
    "min_units": ("int", lambda v: 0 <= v <= 1000, "a whole number from 0 to 1000"),
    "short_text_units": ("float", lambda v: 0 <= v <= 1000, "a number from 0 to 1000"),
    "silent_dbfs": _LEVEL,
    "max_gap_s": _ABOVE_0,
    "max_edge_silence_s": _ABOVE_0,
    "max_clipped_share": ("float", lambda v: 0 <= v <= 1, "a share from 0 to 1"),
    "loudness_jump_lu": _ABOVE_0,
    "min_loudness_lufs": _LEVEL,
    "max_loudness_lufs": _LEVEL,
}


def parse_quality(
    value: object,
    file: str,
    line: int | None,
    key_lines: Mapping[str, int] | None = None,
) -> tuple[QualityConfig, list[Problem]]:
    """The config of a job's ``quality:`` value (a mapping, ``off``/``false``, ``on``/``true``).

    ``line`` is the line of ``quality:`` itself, ``key_lines`` the line of each key when the
    caller knows it. Returns the defaults with the good keys applied, and every problem.
    """
    lines = key_lines or {}
    if value is None or value is True or value in ("on", "ON", "On"):
        return QualityConfig(), []
    if value is False or value in ("off", "OFF", "Off"):
        return OFF, []
    if not isinstance(value, Mapping):
        message = "quality must be off, on, or a mapping of settings such as {retries: 1}"
        return QualityConfig(), [Problem(file, line, message)]
    changes: dict[str, object] = {}
    problems: list[Problem] = []
    for key, item in value.items():
        where = lines.get(str(key), line)
        problem = _check(str(key), item)
        if problem:
            problems.append(Problem(file, where, problem))
        else:
            kind = _CHECKS[str(key)][0]
            changes[str(key)] = float(item) if kind == "float" else item
    config = dataclasses.replace(QualityConfig(), **changes)  # type: ignore[arg-type]
    problems.extend(Problem(file, line, p) for p in _cross_problems(config))
    return config, problems


def _check(key: str, item: object) -> str | None:
    if key not in _CHECKS:
        return f"quality has no setting {key!r}; known: {', '.join(_CHECKS)}"
    kind, test, words = _CHECKS[key]
    if kind == "bool":
        good = isinstance(item, bool)
    elif isinstance(item, bool) or not isinstance(item, int | float):
        good = False
    elif kind == "int":
        good = isinstance(item, int) and test(item)
    else:
        good = math.isfinite(item) and test(item)
    return None if good else f"quality.{key} must be {words}, not {item!r}"


def _cross_problems(config: QualityConfig) -> list[str]:
    found = []
    if config.prior_low > config.duration_low or config.prior_high < config.duration_high:
        found.append("quality: the prior_low/prior_high range must contain duration_low/high")
    if config.min_loudness_lufs >= config.max_loudness_lufs:
        found.append("quality.min_loudness_lufs must be under max_loudness_lufs")
    return found
