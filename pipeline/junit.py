"""JUnit XML for CI test-report views (``--junit FILE``): one test case per chapter.

Built from the report.json dict, so a merged report gives one file for the whole job. The
shape is the common Ant/Jenkins one that GitHub, GitLab, Jenkins and Azure read:

    testsuites > testsuite (+ properties) > testcase > failure | error | skipped | system-out

- an ``ok`` chapter passes; its system-out names the output file and its duration;
- a ``failed`` chapter has a ``failure`` with the Coze code, message, logid and line;
- a dubbed line still longer than its cue (report ``dubbing.overflows``) is a test case
  ``<chapter> fit <line>`` with a ``failure`` of type ``FitOverflow``;
- any other chapter status (``pending``: the run stopped first) is ``skipped``;
- a chunk the quality gate flagged (chapter ``quality_flags``) is one more test case with a
  ``failure``, named after its line, classname ``<job>.<chapter id>``: under its chapter;
- a fatal answer that stopped the run (report ``error``) is one more test case, ``(run)``, with
  an ``error``: CI views then show the stop itself, not only chapters that never ran.

A test case's time is the chapter's audio length (the report has no per-chapter wall time);
the suite's time is the run's elapsed_s.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.fileio import atomic_write_text

SUITE_PREFIX = "tts-pipeline"
# Parenthesized so that it can never be taken for a chapter id.
RUN_CASE = "(run)"
# XML 1.0 cannot carry most control characters, not even escaped; a server message could.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def junit_xml(report: dict[str, Any]) -> str:
    """The JUnit XML document for a report.json dict, with its XML declaration."""
    classname = _classname(report)
    suite_name = _suite_name(classname, report)
    cases = [_chapter_case(classname, c) for c in report.get("chapters", [])]
    cases.extend(case for c in report.get("chapters", []) for case in _fit_cases(classname, c))
    for chapter in report.get("chapters", []):
        flags = _objects(chapter.get("quality_flags"))
        cases.extend(_flag_case(classname, chapter, f) for f in flags)
    if report.get("error"):
        cases.append(_run_error_case(classname, report))
    counts = _counts(cases)
    time = _seconds(report.get("elapsed_s"))
    root = ET.Element("testsuites", {"name": SUITE_PREFIX, **counts, "time": time})
    suite = ET.SubElement(root, "testsuite", {"name": suite_name, **counts, "time": time})
    timestamp = _timestamp(report)
    if timestamp is not None:
        suite.set("timestamp", timestamp)
    suite.append(_properties(report))
    suite.extend(cases)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def write_junit(path: Path, report: dict[str, Any]) -> None:
    atomic_write_text(path, junit_xml(report))


def _classname(report: dict[str, Any]) -> str:
    """``tts-pipeline.<job>``: the same for every shard, so a chapter keeps its CI history."""
    source = report.get("source")
    return _safe(f"{SUITE_PREFIX}.{Path(str(source)).stem}" if source else SUITE_PREFIX)


def _suite_name(classname: str, report: dict[str, Any]) -> str:
    name = classname
    shard = report.get("shard")
    if isinstance(shard, dict) and "k" in shard and "n" in shard:
        name += f" (shard {shard['k']}/{shard['n']})"
    return _safe(name)


def _chapter_case(classname: str, chapter: dict[str, Any]) -> ET.Element:
    case = ET.Element(
        "testcase",
        {
            "classname": classname,
            "name": _safe(str(chapter.get("id"))),
            "time": _seconds(chapter.get("duration_s")),
        },
    )
    status = chapter.get("status")
    if status == "failed":
        case.append(_failure(chapter))
    elif status != "ok":
        ET.SubElement(case, "skipped", {"message": _skip_message(status)})
    out = _system_out(chapter)
    if out:
        ET.SubElement(case, "system-out").text = out
    return case


def _flag_case(classname: str, chapter: dict[str, Any], flag: dict[str, Any]) -> ET.Element:
    where = f"{flag.get('file')}:{flag.get('file_line')}"
    case = ET.Element(
        "testcase",
        {
            "classname": _safe(f"{classname}.{chapter.get('id')}"),
            "name": _safe(f"quality of line {flag.get('line')} ({where})"),
            "time": "0",
        },
    )
    rules = ", ".join(str(r) for r in _listed(flag.get("rules")))
    message = _safe(f"quality: {rules} at {where}")
    failure = ET.SubElement(case, "failure", {"message": message, "type": "QualityFlag"})
    measures = _object(_object(flag.get("measures")).get("measures"))
    lines = [message, f"chunk: {flag.get('chunk')}", f"answers judged: {flag.get('requests')}"]
    lines.extend(f"{k}: {v}" for k, v in measures.items())
    failure.text = _safe("\n".join(lines))
    return case


def _failure(chapter: dict[str, Any]) -> ET.Element:
    error = _object(chapter.get("error"))
    element = ET.Element("failure", _problem_attributes(error, "ApiError"))
    element.text = _details(error, f"chapter {chapter.get('id')} failed")
    return element


def _fit_cases(classname: str, chapter: dict[str, Any]) -> list[ET.Element]:
    """Dubbing: one failing case per line still longer than its cue, under its chapter."""
    cases = []
    for over in _objects(_object(chapter.get("dubbing")).get("overflows")):
        name = _safe(f"{chapter.get('id')} fit {over.get('line')}")
        case = ET.Element("testcase", {"classname": classname, "name": name, "time": "0"})
        message = (
            f"line {over.get('line')} lasts {over.get('audio_s')} s in a {over.get('slot_s')} s "
            f"cue: {over.get('overflow_s')} s too long"
        )
        ET.SubElement(case, "failure", {"message": _safe(message), "type": "FitOverflow"})
        cases.append(case)
    return cases


def _object(value: Any) -> dict[str, Any]:
    """``value`` when it is an object, else an empty one: a report is read as hostile."""
    return value if isinstance(value, dict) else {}


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _objects(value: Any) -> list[dict[str, Any]]:
    return [item for item in _listed(value) if isinstance(item, dict)]


def _run_error_case(classname: str, report: dict[str, Any]) -> ET.Element:
    error = _object(report["error"])
    case = ET.Element("testcase", {"classname": classname, "name": RUN_CASE, "time": "0"})
    element = ET.SubElement(case, "error", _problem_attributes(error, "FatalApiError"))
    element.text = _details(error, f"the run stopped ({report.get('status')})")
    return case


def _problem_attributes(error: dict[str, Any], kind: str) -> dict[str, str]:
    code = error.get("code")
    return {
        "message": _safe(f"code {code}: {error.get('message') or 'no message'}"),
        "type": _safe(f"{kind} code {code}"),
    }


def _details(error: dict[str, Any], headline: str) -> str:
    lines = [headline, f"code: {error.get('code')}", f"message: {error.get('message')}"]
    if error.get("line") is not None:
        lines.append(f"line: {error['line']}")
    lines.append(f"logid: {error.get('logid') or '-'}")
    return _safe("\n".join(lines))


def _skip_message(status: object) -> str:
    if status == "pending":
        return "not synthesized: the run stopped before this chapter was finished"
    return _safe(f"not synthesized (status {status})")


def _system_out(chapter: dict[str, Any]) -> str:
    lines = []
    if chapter.get("output"):
        lines.append(f"output: {chapter['output']}")
    if chapter.get("duration_s") is not None:
        lines.append(f"duration: {_seconds(chapter['duration_s'])} s")
    lines.extend(f"subtitles: {s}" for s in _listed(chapter.get("subtitles")))
    return _safe("\n".join(lines))


def _properties(report: dict[str, Any]) -> ET.Element:
    properties = ET.Element("properties")
    values: dict[str, Any] = {"status": report.get("status")}
    values.update(report.get("totals") or {})
    for name, value in values.items():
        ET.SubElement(properties, "property", {"name": name, "value": _safe(str(value))})
    return properties


def _counts(cases: list[ET.Element]) -> dict[str, str]:
    def having(tag: str) -> int:
        return sum(1 for case in cases if case.find(tag) is not None)

    return {
        "tests": str(len(cases)),
        "failures": str(having("failure")),
        "errors": str(having("error")),
        "skipped": str(having("skipped")),
    }


def _seconds(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < math.inf:
        return f"{value:.3f}"
    return "0"


def _timestamp(report: dict[str, Any]) -> str | None:
    """The start as ISO 8601 UTC without a zone suffix: the JUnit schema's pattern has none."""
    try:
        moment = datetime.fromisoformat(str(report.get("started_at")))
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _safe(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)
