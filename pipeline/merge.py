"""Joining the report.json files of the shards of one job (``tts-pipeline merge-reports``).

Works on the JSON dicts, not on RunReport, so that a merged report can be merged again and
read by the JUnit and summary writers like any other.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.fileio import atomic_write_text
from pipeline.redact import escape_controls
from pipeline.report import RUN_STATUSES
from pipeline.sharding import Shard, original_position

# Worst first. "failed" and "partial" tie: which of them a merge gets depends on whether any
# chapter of any shard was written, not on the shards' own words.
_SEVERITY = {"aborted": 3, "interrupted": 2, "failed": 1, "partial": 1, "ok": 0}
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# A report of 10,000 chapters is a few MB; anything this big is something else.
MAX_REPORT_BYTES = 64 * 1024 * 1024
# A report is nested about 5 deep (chapters -> chapter -> error); "source" may add a few.
MAX_DEPTH = 64
# Fields every report has; anything else (source, budget, ...) is kept only when all agree.
_OWN_FIELDS = frozenset(
    {"status", "started_at", "finished_at", "elapsed_s", "totals", "chapters", "error",
     "book", "shard", "merged"}
)


def load_report(path: Path) -> dict[str, Any]:
    """A report.json as a dict; a one-line ConfigError naming the file when it is not one.

    Bounded: a regular file of at most ``MAX_REPORT_BYTES``, nested at most ``MAX_DEPTH``
    deep, finite numbers only; a FIFO or a device is refused without reading it.
    """
    shown = escape_controls(str(path))
    text = _read_bounded(path, shown)
    try:
        data = json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"{shown}:{e.lineno}: not valid JSON ({e.msg}); is it a tts-pipeline report.json?"
        ) from None
    except RecursionError:
        raise ConfigError(f"{shown}: nested too deeply to be a tts-pipeline report") from None
    except ValueError as e:  # a non-finite number, or an integer of thousands of digits
        raise ConfigError(f"{shown}: not a tts-pipeline report: {_short(str(e))}") from None
    problem = _depth_problem(data) or _shape_problem(data)
    if problem is not None:
        raise ConfigError(f"{shown}: not a tts-pipeline report: {problem}")
    return dict(data)


def _read_bounded(path: Path, shown: str) -> str:
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; only regular files are read.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise ConfigError(f"{shown}: cannot read the report: {e.strerror or e}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ConfigError(f"{shown}: not a regular file")
    with os.fdopen(fd, "rb") as f:
        try:
            data = f.read(MAX_REPORT_BYTES + 1)
        except OSError as e:
            raise ConfigError(f"{shown}: cannot read the report: {e.strerror or e}") from None
    if len(data) > MAX_REPORT_BYTES:
        raise ConfigError(
            f"{shown}: larger than {MAX_REPORT_BYTES // (1024 * 1024)} MiB; "
            "not a tts-pipeline report.json"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{shown}: not UTF-8 text (byte {e.start}); not a report.json") from None


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {_short(text)} is out of range")
    return value


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _depth_problem(data: Any) -> str | None:
    """Why ``data`` is nested too deeply, or None; iterative, so never a RecursionError."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH} levels"
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return None


def _short(text: str, limit: int = 80) -> str:
    text = escape_controls(text)
    return text if len(text) <= limit else text[:limit] + "..."


def _shape_problem(data: Any) -> str | None:
    if not isinstance(data, dict):
        return "the top level is not an object"
    if data.get("status") not in RUN_STATUSES:
        status = _short(repr(data.get("status")))
        return f"status must be one of {', '.join(RUN_STATUSES)}, not {status}"
    totals = data.get("totals")
    if not isinstance(totals, dict):
        return "no totals object"
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in totals.values()):
        return "a totals value is not a number"
    chapters = data.get("chapters")
    if not isinstance(chapters, list) or not all(isinstance(c, dict) for c in chapters):
        return "no chapters list"
    if not all(isinstance(c.get("id"), str) for c in chapters):
        return "a chapter has no id"
    errors = [data.get("error"), *(c.get("error") for c in chapters)]
    if not all(e is None or isinstance(e, dict) for e in errors):
        return "an error is neither an object nor null"
    return _time_problem(data) or _shard_problem(data)


def _time_problem(data: dict[str, Any]) -> str | None:
    for name in ("started_at", "finished_at"):
        value = data.get(name)
        if not isinstance(value, str):
            return f"no {name}"
        try:
            _format(_parse(value))
        except (ConfigError, ValueError, OverflowError):
            return f"{name} is not an ISO 8601 time: {_short(repr(value))}"
    elapsed = data.get("elapsed_s")
    if elapsed is not None and (isinstance(elapsed, bool) or not isinstance(elapsed, int | float)):
        return "elapsed_s is not a number"
    return None


def _shard_problem(data: dict[str, Any]) -> str | None:
    if data.get("shard") is None:
        return None
    try:
        Shard.from_json(data["shard"])
    except ConfigError:
        return f"shard must be {{\"k\": K, \"n\": N}}, not {_short(repr(data['shard']))}"
    return None


def merge_reports(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One report for a job from the reports of its shards (or of any disjoint runs).

    - chapters: in the job's order when every report carries a ``"shard"`` field (each
      shard's chapters are in job order and the split is round-robin), else in the order
      given; a chapter id in two reports is a ConfigError naming it.
    - totals: summed, key by key.
    - started_at / finished_at: the earliest start and the latest finish.
    - elapsed_s: the longest shard's. The shards ran in parallel, so this is the job's
      wall-clock time without the time the matrix jobs waited for a runner;
      ``merged.machine_s`` is the sum, the machine time spent.
    - status: aborted > interrupted > failed/partial > ok, where a merge with some failed
      chapters (or a missing shard) is ``partial`` when any chapter was written and
      ``failed`` when none was. ``error``: the first fatal error, in shard order.
    - ``merged``: how many reports, and for sharded runs N and the shards that are missing.

    ConfigError on no reports, duplicate chapters, or shard fields that do not fit together.
    """
    if not reports:
        raise ConfigError("no reports to merge")
    shards = _shards(reports)
    ordered = _ordered(reports, shards)
    _check_unique([c for _, c in ordered])
    chapters = [c for _, c in ordered]
    missing = _missing_shards(shards)
    out: dict[str, Any] = {
        "status": _status(reports, chapters, bool(missing)),
        "started_at": _format(min(_parse(r["started_at"]) for r in reports)),
        "finished_at": _format(max(_parse(r["finished_at"]) for r in reports)),
        "elapsed_s": round(max(_elapsed(r) for r in reports), 3),
        "totals": _sum_totals([r["totals"] for r in reports]),
        "chapters": chapters,
    }
    error = next((r["error"] for r in _by_shard(reports, shards) if r.get("error")), None)
    if error is not None:
        out["error"] = error
    out.update(_agreed_extras(reports))
    out["merged"] = _merge_info(reports, shards, missing)
    return out


def _shards(reports: Sequence[dict[str, Any]]) -> list[Shard] | None:
    """Every report's shard, or None when the reports do not all carry one."""
    raw = [r.get("shard") for r in reports]
    if all(s is None for s in raw):
        return None
    if any(s is None for s in raw):
        raise ConfigError("some reports carry a shard field and some do not: mixed runs?")
    shards = [Shard.from_json(s) for s in raw]
    counts = {s.n for s in shards}
    if len(counts) > 1:
        raise ConfigError(f"the reports come from splits into different numbers of shards: "
                         f"{', '.join(str(s) for s in shards)}")
    repeated = sorted(str(s) for s, count in Counter(shards).items() if count > 1)
    if repeated:
        raise ConfigError(f"shard given twice: {', '.join(repeated)}")
    return shards


def _ordered(
    reports: Sequence[dict[str, Any]], shards: list[Shard] | None
) -> list[tuple[int, dict[str, Any]]]:
    if shards is None:
        flat = [c for r in reports for c in r["chapters"]]
        return list(enumerate(flat))
    placed = [
        (original_position(shard, i), chapter)
        for report, shard in zip(reports, shards, strict=True)
        for i, chapter in enumerate(report["chapters"])
    ]
    return sorted(placed, key=lambda pair: pair[0])


def _check_unique(chapters: list[dict[str, Any]]) -> None:
    counts = Counter(str(c["id"]) for c in chapters)
    duplicates = sorted(i for i, n in counts.items() if n > 1)
    if duplicates:
        raise ConfigError(f"chapters in more than one report: {', '.join(duplicates)}")


def _missing_shards(shards: list[Shard] | None) -> list[int]:
    if shards is None:
        return []
    present = {s.k for s in shards}
    return [k for k in range(1, shards[0].n + 1) if k not in present]


def _status(
    reports: Sequence[dict[str, Any]], chapters: list[dict[str, Any]], missing: bool
) -> str:
    worst = max((str(r["status"]) for r in reports), key=_severity)
    if worst in ("aborted", "interrupted"):
        return worst
    if _severity(worst) == 0 and not missing:
        return "ok"
    return "partial" if any(c.get("status") == "ok" for c in chapters) else "failed"


def _severity(status: str) -> int:
    try:
        return _SEVERITY[status]
    except KeyError:
        raise ConfigError(f"unknown report status {status!r}") from None


def _by_shard(
    reports: Sequence[dict[str, Any]], shards: list[Shard] | None
) -> list[dict[str, Any]]:
    if shards is None:
        return list(reports)
    pairs = sorted(zip(shards, reports, strict=True), key=lambda pair: pair[0].k)
    return [report for _, report in pairs]


def _parse(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"not an ISO 8601 time: {text!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _format(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def _elapsed(report: dict[str, Any]) -> float:
    value = report.get("elapsed_s")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return (_parse(report["finished_at"]) - _parse(report["started_at"])).total_seconds()


def _sum_totals(totals: list[dict[str, Any]]) -> dict[str, Any]:
    keys: list[str] = []
    for t in totals:
        keys.extend(k for k in t if k not in keys)
    out: dict[str, Any] = {}
    for key in keys:
        values = [t.get(key, 0) for t in totals]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            raise ConfigError(f"totals.{key} is not a number in every report")
        total = sum(values)
        out[key] = round(total, 3) if isinstance(total, float) else total
    return out


def _agreed_extras(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Fields beyond the report's own (e.g. "source") that every report has with one value.

    Two different sources mean reports of two jobs: that merge is refused, not guessed.
    """
    sources = {json.dumps(r.get("source")) for r in reports}
    if len(sources) > 1:
        raise ConfigError(
            f"the reports are of different jobs: sources {', '.join(sorted(sources))}"
        )
    first, rest = reports[0], reports[1:]
    return {
        key: value
        for key, value in first.items()
        if key not in _OWN_FIELDS and all(key in r and r[key] == value for r in rest)
    }


def _merge_info(
    reports: Sequence[dict[str, Any]], shards: list[Shard] | None, missing: list[int]
) -> dict[str, Any]:
    info: dict[str, Any] = {
        "reports": len(reports),
        "machine_s": round(sum(_elapsed(r) for r in reports), 3),
    }
    if shards is not None:
        info["shards"] = shards[0].n
        info["missing_shards"] = missing
    return info


def write_report_json(path: Path, report: dict[str, Any]) -> None:
    """Write a report dict as ``write_report`` does: UTF-8, indented, atomically."""
    atomic_write_text(path, json.dumps(report, ensure_ascii=False, indent=2) + "\n")
