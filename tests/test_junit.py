"""JUnit XML: valid against the common schema, one test case per chapter, failures in full."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest

from pipeline.junit import junit_xml, write_junit
from pipeline.report import ChapterError, ChapterReport, RunReport, Totals

XSD = Path(__file__).parent / "data" / "junit.xsd"
START = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)


def _report(
    status: str = "partial",
    chapters: list[ChapterReport] | None = None,
    error: ChapterError | None = None,
    **extra: Any,
) -> dict[str, Any]:
    if chapters is None:
        chapters = [
            ChapterReport("ch01", "One", "ok", "ch01.mp3", 4.25, 2, 3, subtitles=["ch01.srt"]),
            ChapterReport("ch02", None, "failed", None, None, 1, 1,
                          ChapterError(4000, "speed is out of range", "LOG123", "l012")),
            ChapterReport("ch03", "Three", "pending", None, None, 1, 1),
        ]
    return RunReport(
        status=status,
        started_at=START,
        finished_at=START + timedelta(seconds=12.3),
        totals=Totals(chapters=len(chapters), requests=5, billed_characters=55,
                      audio_seconds=4.25),
        chapters=chapters,
        error=error,
        extra=dict(extra),
    ).to_json()


# ---------------------------------------------------------------- the schema checkers

TESTCASE_CHILDREN = {"skipped", "error", "failure", "system-out", "system-err"}
SUITE_CHILDREN = {"properties", "testcase", "system-out", "system-err"}
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


def _non_negative_decimal(text: str | None) -> bool:
    try:
        return text is not None and Decimal(text).is_finite() and Decimal(text) >= 0
    except InvalidOperation:
        return False


def _count(element: ET.Element, name: str) -> int:
    text = element.get(name)
    assert text is not None and text.isdigit(), f"{element.tag}@{name}={text!r}"
    return int(text)


def check_common_junit(document: str) -> None:
    """The Ant/Jenkins JUnit rules, including what an XSD cannot say: counts match children."""
    root = ET.fromstring(document)
    assert root.tag == "testsuites"
    suites = list(root)
    assert suites and all(s.tag == "testsuite" for s in suites)
    for suite in suites:
        check_suite(suite)
    for name in ("tests", "failures", "errors", "skipped"):
        assert _count(root, name) == sum(_count(s, name) for s in suites), name


def check_suite(suite: ET.Element) -> None:
    assert suite.get("name")
    assert {c.tag for c in suite} <= SUITE_CHILDREN
    assert _non_negative_decimal(suite.get("time"))
    assert TIMESTAMP.fullmatch(suite.get("timestamp", "")), suite.get("timestamp")
    cases = suite.findall("testcase")
    for case in cases:
        check_case(case)
    assert _count(suite, "tests") == len(cases)
    for name, tag in (("failures", "failure"), ("errors", "error"), ("skipped", "skipped")):
        assert _count(suite, name) == sum(1 for c in cases if c.find(tag) is not None), name


def check_case(case: ET.Element) -> None:
    assert case.get("name") and case.get("classname"), case.attrib
    assert _non_negative_decimal(case.get("time")), case.get("time")
    tags = [c.tag for c in case]
    assert set(tags) <= TESTCASE_CHILDREN, tags
    outcomes = {t for t in tags if t in ("skipped", "error", "failure")}
    assert len(outcomes) <= 1 and tags.count("skipped") <= 1, tags
    for problem in case.findall("failure") + case.findall("error"):
        assert problem.get("message") and problem.get("type")


def validate_xsd(document: str) -> None:
    etree = pytest.importorskip("lxml.etree")
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    tree = etree.fromstring(document.encode("utf-8"))
    assert schema.validate(tree), schema.error_log


# ---------------------------------------------------------------- tests


def test_a_partial_run_is_valid_common_junit() -> None:
    document = junit_xml(_report())
    check_common_junit(document)
    validate_xsd(document)


def test_the_checkers_reject_what_ci_would_reject() -> None:
    good = junit_xml(_report())
    bad_count = good.replace('failures="1"', 'failures="2"', 1)
    bad_nesting = good.replace("<system-out>", "<stdout>").replace("</system-out>", "</stdout>")
    negative_time = good.replace('time="4.250"', 'time="-4.250"')
    for document in (bad_count, bad_nesting, negative_time):
        assert document != good
        with pytest.raises(AssertionError):
            check_common_junit(document)
    etree = pytest.importorskip("lxml.etree")
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    for document in (bad_nesting, negative_time):
        assert not schema.validate(etree.fromstring(document.encode("utf-8")))


def test_one_case_per_chapter_with_outcomes() -> None:
    root = ET.fromstring(junit_xml(_report(source="jobs/sample.yaml")))
    suite = root.find("testsuite")
    assert suite is not None
    assert suite.get("name") == "tts-pipeline.sample"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert list(cases) == ["ch01", "ch02", "ch03"]
    assert all(c.get("classname") == "tts-pipeline.sample" for c in cases.values())
    ok, failed, pending = cases["ch01"], cases["ch02"], cases["ch03"]
    assert len(ok) == 1 and ok.get("time") == "4.250"
    assert ok.findtext("system-out") == "output: ch01.mp3\nduration: 4.250 s\nsubtitles: ch01.srt"
    failure = failed.find("failure")
    assert failure is not None
    assert failure.get("message") == "code 4000: speed is out of range"
    assert failure.get("type") == "ApiError code 4000"
    assert "logid: LOG123" in (failure.text or "") and "line: l012" in (failure.text or "")
    assert failed.get("time") == "0"
    skipped = pending.find("skipped")
    assert skipped is not None and "stopped" in (skipped.get("message") or "")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    assert suite.get("timestamp") == "2026-11-23T10:00:00"
    assert suite.get("time") == "12.300"


def test_a_fatal_stop_is_an_error_case() -> None:
    stop = ChapterError(4100, "token refused", "LOGX", None)
    document = junit_xml(_report("aborted", error=stop))
    check_common_junit(document)
    validate_xsd(document)
    suite = ET.fromstring(document).find("testsuite")
    assert suite is not None and suite.get("errors") == "1" and suite.get("tests") == "4"
    error = suite.find("testcase[@name='(run)']/error")
    assert error is not None
    assert error.get("message") == "code 4100: token refused"
    assert error.get("type") == "FatalApiError code 4100"
    assert "logid: LOGX" in (error.text or "")


def test_properties_carry_status_and_totals() -> None:
    suite = ET.fromstring(junit_xml(_report())).find("testsuite")
    assert suite is not None
    props = {p.get("name"): p.get("value") for p in suite.iterfind("properties/property")}
    assert props["status"] == "partial"
    assert props["billed_characters"] == "55"


def test_an_empty_shard_is_valid_and_names_its_shard() -> None:
    document = junit_xml(_report("ok", chapters=[], shard={"k": 3, "n": 3}))
    check_common_junit(document)
    validate_xsd(document)
    suite = ET.fromstring(document).find("testsuite")
    assert suite is not None and suite.get("tests") == "0"
    assert suite.get("name") == "tts-pipeline (shard 3/3)"


def test_a_chapter_has_one_classname_in_every_shard() -> None:
    for k in (1, 2):
        report = _report(shard={"k": k, "n": 2}, source="jobs/sample.yaml")
        suite = ET.fromstring(junit_xml(report)).find("testsuite")
        assert suite is not None and suite.get("name") == f"tts-pipeline.sample (shard {k}/2)"
        assert {c.get("classname") for c in suite} - {None} == {"tts-pipeline.sample"}


def test_hostile_text_stays_well_formed() -> None:
    nasty = 'bad <tag> & "quotes" ]]> \x00\x07\x1b end \U0001f600'
    chapters = [
        ChapterReport("ch<1>&", nasty, "failed", None, None, 1, 1,
                      ChapterError(5000, nasty, nasty, nasty)),
    ]
    document = junit_xml(_report("failed", chapters=chapters))
    check_common_junit(document)
    validate_xsd(document)
    failure = ET.fromstring(document).find("testsuite/testcase/failure")
    assert failure is not None
    message = failure.get("message") or ""
    assert message.startswith('code 5000: bad <tag> & "quotes" ]]> ')
    assert "\x00" not in message and "\U0001f600" in message


def test_write_junit_replaces_the_file(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "junit.xml"
    write_junit(target, _report())
    write_junit(target, _report("ok", chapters=[]))
    check_common_junit(target.read_text(encoding="utf-8"))
    assert [p.name for p in target.parent.iterdir()] == ["junit.xml"]
    assert 'tests="0"' in target.read_text(encoding="utf-8")


def test_nested_fields_of_the_wrong_shape_are_read_as_absent() -> None:
    # A report is read as hostile: what merge-reports passes on must not break the XML.
    report = _report()
    chapter = report["chapters"][0]
    chapter["quality_flags"] = [["not", "a", "flag"], {"rules": "silent", "measures": [1]}]
    chapter["dubbing"] = {"overflows": {"line": 3}}
    chapter["subtitles"] = 5  # found by review: merge-reports let it through to here
    document = junit_xml(report)
    check_common_junit(document)
    assert document.count('type="QualityFlag"') == 1
    assert "FitOverflow" not in document
