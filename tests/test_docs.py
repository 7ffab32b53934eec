"""Docs that cannot drift: the user contract in docs/ against what the program really does.

- every option of every command's ``--help`` has a row in that command's table in
  docs/cli.md, and every row names a real option (the help is read from a subprocess, so the
  test knows nothing of how cli.py builds its parser);
- every manifest key and CSV column the loader accepts (the key tuples of
  ``pipeline.manifest``) has a row in its table in docs/manifest.md, and the reverse;
- every field of docs/report.schema.json has a row in docs/outputs.md, and the reverse; the
  report.json of real runs (ok, partial, failed, aborted, interrupted, sharded, merged)
  validates against the schema, which allows no undocumented field;
- every exit status is in docs/outputs.md.

Each failure says which file and heading to add to. The tables' shape: one row per option or
key, the first cell holding it in backticks (several names in one cell are fine:
"`-o DIR`, `--out DIR`").
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from helpers import REPO, cli_env, read_report, run_cli, start_cli, texts, wait_for, write_job

import pipeline.manifest
from pipeline.localserver import LocalServer
from pipeline.report import EXIT_CODES, RUN_STATUSES

DOCS = REPO / "docs"
CLI_DOC = DOCS / "cli.md"
MANIFEST_DOC = DOCS / "manifest.md"
OUTPUTS_DOC = DOCS / "outputs.md"
SCHEMA = DOCS / "report.schema.json"
PROGRAM = "tts-pipeline"
ALWAYS_THERE = {"-h", "--help"}  # argparse's own; documented once, for the program

MakeServer = Callable[..., LocalServer]


# ---------------------------------------------------------------- reading the docs


def sections(path: Path) -> dict[str, list[str]]:
    """Heading line (as written, e.g. ``## tts-pipeline run``) -> the lines under it, up to
    the next heading of any level."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if not in_code and re.match(r"#{1,6} ", line):
            current = found.setdefault(line.strip(), [])
        elif current is not None:
            current.append(line)
    return found


def first_cells(lines: Iterable[str]) -> list[str]:
    """The first cell of every table row except header and separator rows."""
    rows = [line for line in lines if line.startswith("|")]
    cells = [row.split("|")[1].strip() for row in rows]
    return [c for c in cells[1:] if not re.fullmatch(r":?-+:?", c)] if cells else []


def names_in(cell: str) -> set[str]:
    """The option, argument or key names a first cell holds: the first word of each
    backticked span (``--out DIR`` -> ``--out``)."""
    return {span.split()[0] for span in re.findall(r"`([^`]+)`", cell) if span.split()}


def table_names(path: Path, heading: str) -> set[str] | None:
    """The names in the tables under ``heading`` of ``path``; None when there is no such
    heading."""
    found = sections(path)
    if heading not in found:
        return None
    return {name for cell in first_cells(found[heading]) for name in names_in(cell)}


def doc_name(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


# ---------------------------------------------------------------- commands and options


# `python -m pipeline CMD --help` for many commands in one interpreter: starting one per
# command costs seconds each on a busy machine. runpy runs the package's __main__ exactly as
# `-m` does; a marker line goes before each command's help.
_HELP_SCRIPT = """
import runpy, sys
for command in sys.argv[1:]:
    sys.argv = ["tts-pipeline", *command.split(), "--help"]
    print("\\0" + command, flush=True)
    try:
        runpy.run_module("pipeline", run_name="__main__", alter_sys=True)
    except SystemExit as e:
        if e.code not in (0, None):
            raise
"""


def _python(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=cli_env(COLUMNS="100"),
        check=False,
    )
    assert result.returncode == 0, f"{' '.join(args)}: {result.stderr}"
    return result.stdout


def help_texts(commands: Sequence[str]) -> dict[str, str]:
    """Command -> its --help; the key "" is the program's own."""
    texts = {"": _python("-m", "pipeline", "--help")}
    output = _python("-c", _HELP_SCRIPT, *commands)
    for part in output.split("\0")[1:]:
        command, _, text = part.partition("\n")
        texts[command] = text
    return texts


def help_commands(text: str) -> list[str]:
    """The commands the program's ``--help`` lists (indented under its COMMAND argument)."""
    return re.findall(r"^ {4}([a-z][\w-]*)(?=\s|$)", text, re.MULTILINE)


def help_options(text: str) -> set[str]:
    """Every option (``-o``, ``--out``) and positional argument (``SOURCE``) of a --help."""
    names: set[str] = set()
    section = ""
    for line in text.splitlines():
        if re.match(r"\S.*:$", line):
            section = line
            continue
        # An argument's line starts at column 2; its help follows after two spaces or on
        # lines indented further, which this skips.
        match = re.match(r" {2}(\S.*?)(?: {2,}|$)", line)
        if not section or match is None:
            continue
        spec = match.group(1)
        if section.startswith("positional"):
            names.add(spec.split()[0])
        else:
            names.update(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", spec))
    return names


def cli_problems() -> list[str]:
    top = _python("-m", "pipeline", "--help")
    commands = help_commands(top)
    assert {"run", "plan", "validate"} <= set(commands), f"no commands found in:\n{top}"
    helps = help_texts(commands)
    problems = []
    for command in ["", *commands]:
        heading = f"## {PROGRAM} {command}".rstrip()
        invocation = f"{PROGRAM} {command} --help".replace("  ", " ")
        documented = table_names(CLI_DOC, heading)
        if documented is None:
            problems.append(
                f"{doc_name(CLI_DOC)} has no heading '{heading}': add it, with a table of "
                f"every option of `{invocation}` (one row each, like the other commands)"
            )
            continue
        assert command in helps, f"`{invocation}` printed nothing"
        real = help_options(helps[command])
        for name in sorted(real - documented - ALWAYS_THERE):
            problems.append(
                f"{doc_name(CLI_DOC)}, under '{heading}': `{invocation}` lists {name}, which "
                f'has no row: add the row "| `{name} ...` | what it does | default |" to that table'
            )
        for name in sorted(documented - real):
            problems.append(
                f"{doc_name(CLI_DOC)}, under '{heading}': the table names {name}, which "
                f"`{invocation}` does not list: remove the row or correct the name"
            )
    for heading in sections(CLI_DOC):
        match = re.fullmatch(rf"## {PROGRAM} (\S+)", heading)
        if match and match.group(1) not in commands:
            problems.append(
                f"{doc_name(CLI_DOC)}: '{heading}' documents a command that `{PROGRAM} --help` "
                "does not list"
            )
    return problems


def test_every_option_of_every_command_is_documented_and_nothing_else() -> None:
    problems = cli_problems()
    assert not problems, "\n".join(problems)


def test_the_help_parser_finds_options_in_every_layout() -> None:
    # The parser above is what the drift test stands on: check it on argparse's layouts
    # (short and long forms, metavars, choices, help on the next line, argument groups).
    text = (
        "usage: x [-h] SOURCE\n\npositional arguments:\n  SOURCE\n  REPORT  the reports\n\n"
        "options:\n  -h, --help            show this help message and exit\n"
        "  -o OUT, --out OUT     output directory (job's output.dir,\n"
        "                        else -x)\n"
        "  --sample-rate {8000,16000}\n                        sample_rate\n"
        "  --shard K/N           a --not-an-option in help\n\n"
        "backend:\n  --backend {coze,local}\n"
    )
    assert help_options(text) == {
        "SOURCE", "REPORT", "-h", "--help", "-o", "--out", "--sample-rate", "--shard", "--backend"
    }  # fmt: skip
    assert names_in("`-o DIR`, `--out DIR`") == {"-o", "--out"}


# ---------------------------------------------------------------- manifest keys

# The loader's key tuple -> the heading of its table in docs/manifest.md.
KEY_TABLES = {
    "TOP_KEYS": "### Top-level keys",
    "LAYER_KEYS": "### Speech fields",
    "CHAPTER_KEYS": "### Chapter keys",
    "LINE_KEYS": "### Line keys",
    "CSV_COLUMNS": "### Columns",
    "OUTPUT_KEYS": "### Output settings",
    "RUN_KEYS": "### Run settings",
    "BOOK_KEYS": "### Book settings",
}


@pytest.mark.parametrize("tuple_name", sorted(KEY_TABLES))
def test_every_manifest_key_is_documented_and_nothing_else(tuple_name: str) -> None:
    heading = KEY_TABLES[tuple_name]
    accepted = set(getattr(pipeline.manifest, tuple_name))
    documented = table_names(MANIFEST_DOC, heading)
    assert documented is not None, (
        f"{doc_name(MANIFEST_DOC)} has no heading '{heading}' for pipeline.manifest.{tuple_name}"
    )
    problems = [
        f"{doc_name(MANIFEST_DOC)}, under '{heading}': pipeline.manifest.{tuple_name} accepts "
        f'`{key}`, which has no row: add the row "| `{key}` | meaning | default |" to that table'
        for key in sorted(accepted - documented)
    ] + [
        f"{doc_name(MANIFEST_DOC)}, under '{heading}': the table names `{key}`, which "
        f"pipeline.manifest.{tuple_name} does not accept: remove the row or correct the name"
        for key in sorted(documented - accepted)
    ]
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- report.json

# An object of the schema (a path of keys into it) -> its heading in docs/outputs.md.
REPORT_TABLES = {
    ("properties",): "### Top-level fields",
    ("$defs", "totals", "properties"): "### totals",
    ("$defs", "chapter", "properties"): "### chapters",
    ("$defs", "error", "properties"): "### error",
    ("properties", "merged", "properties"): "### merged",
    ("$defs", "dubbing", "properties"): "### dubbing",
}


def schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return data


def test_the_schema_is_a_valid_json_schema_that_allows_no_undocumented_field() -> None:
    data = schema()
    jsonschema.Draft202012Validator.check_schema(data)
    for path in REPORT_TABLES:
        node = data
        for key in path[:-1]:
            node = node[key]
        assert node.get("additionalProperties") is False, (
            f"{doc_name(SCHEMA)}: {'/'.join(path[:-1]) or 'the top level'} must keep "
            "additionalProperties false, so that an undocumented field fails the tests"
        )


@pytest.mark.parametrize("path", list(REPORT_TABLES), ids=lambda p: "/".join(p))
def test_every_report_field_in_the_schema_is_documented_and_nothing_else(
    path: tuple[str, ...],
) -> None:
    node = schema()
    for key in path:
        node = node[key]
    fields = set(node)
    heading = REPORT_TABLES[path]
    documented = table_names(OUTPUTS_DOC, heading)
    assert documented is not None, f"{doc_name(OUTPUTS_DOC)} has no heading '{heading}'"
    problems = [
        f"{doc_name(OUTPUTS_DOC)}, under '{heading}': {doc_name(SCHEMA)} has the field "
        f'`{name}` ({"/".join(path)}), which has no row: add the row "| `{name}` | meaning |"'
        for name in sorted(fields - documented)
    ] + [
        f"{doc_name(OUTPUTS_DOC)}, under '{heading}': the table names `{name}`, which "
        f"{doc_name(SCHEMA)} does not have at {'/'.join(path)}: add it there or remove the row"
        for name in sorted(documented - fields)
    ]
    assert not problems, "\n".join(problems)


def test_every_exit_status_is_documented() -> None:
    rows = [
        [cell.strip() for cell in line.split("|")[1:-1]]
        for line in sections(OUTPUTS_DOC).get("## Exit codes", [])
        if line.startswith("|")
    ]
    for status in RUN_STATUSES:
        code = str(EXIT_CODES[status])
        assert any(row[0] == code and f"`{status}`" in row[1] for row in rows), (
            f"{doc_name(OUTPUTS_DOC)}, under '## Exit codes': add the row "
            f'"| {code} | `{status}` | meaning |"'
        )


def schema_problems(report: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema())
    return [
        f"report.json at {'/'.join(map(str, error.absolute_path)) or 'the top level'}: "
        f"{error.message}. A new field needs a property in {doc_name(SCHEMA)} and a row in "
        f"{doc_name(OUTPUTS_DOC)} (see its report.json headings)"
        for error in validator.iter_errors(report)
    ]


def assert_valid(report: dict[str, Any]) -> None:
    problems = schema_problems(report)
    assert not problems, "\n".join(problems)


def test_the_schema_refuses_an_undocumented_field() -> None:
    report = {
        "status": "ok", "started_at": "2026-01-01T00:00:00Z",
        "finished_at": "2026-01-01T00:00:01Z", "elapsed_s": 1.0, "chapters": [],
        "totals": dict.fromkeys(("chapters", "lines", "chunks", "characters", "bytes",
                                 "requests", "retries", "cache_hits", "billed_characters",
                                 "audio_seconds"), 0),
    }  # fmt: skip
    assert schema_problems(report) == []
    problems = schema_problems({**report, "surprise": 1})
    assert len(problems) == 1 and "surprise" in problems[0] and "docs/outputs.md" in problems[0]


# --- real runs ---------------------------------------------------------------------------

TOKEN = "docs-test-token"


def two_chapters(directory: Path, **job: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = write_job(directory, {"ch01": texts(3, "one"), "ch02": texts(2, "two")})
    if job:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        path.write_text(yaml.safe_dump({**data, **job}), encoding="utf-8")
    return path


def run_against(server: LocalServer, job: Path, out: Path, *extra: str) -> dict[str, Any]:
    result = run_cli(
        "run", job, "-o", out, "--base-url", server.base_url, "--progress", "none", *extra,
        env=cli_env(COZE_API_TOKEN=TOKEN),
    )  # fmt: skip
    assert result.returncode in (1, 3), result.stderr
    return read_report(out)


def test_an_ok_run_with_subtitles_a_book_and_stale_outputs_validates(tmp_path: Path) -> None:
    job = two_chapters(tmp_path / "job", output={"subtitles": ["srt"], "book": "book.m4b"})
    out = tmp_path / "out"
    result = run_cli("run", job, "-o", out, "--local", "--engine", "tone", "--progress", "none")
    assert result.returncode == 0, result.stderr
    report = read_report(out)
    assert report["status"] == "ok" and report["book"] == "book.m4b"
    assert report["chapters"][0]["subtitles"] == ["ch01.srt"]
    assert_valid(report)

    renamed = write_job(tmp_path / "job", {"ch01": texts(3, "one"), "ch03": texts(1, "three")})
    result = run_cli("run", renamed, "-o", out, "--local", "--engine", "tone", "--progress", "none")
    assert result.returncode == 0, result.stderr
    report = read_report(out)
    assert report["stale_outputs"] == ["ch02.wav"]
    assert_valid(report)


@pytest.mark.parametrize(
    ("faults", "status"),
    [
        ([{"code": 4000}], "partial"),  # one chunk rejected: its chapter fails, the other not
        ([{"code": 4000}] * 10, "failed"),  # every chunk rejected
        ([{"code": 4100, "http_status": 401}], "aborted"),  # the token refused: a run error
    ],
)
def test_partial_failed_and_aborted_runs_validate(
    make_server: MakeServer, tmp_path: Path, faults: list[dict[str, int]], status: str
) -> None:
    server = make_server()
    server.queue_faults(faults)
    report = run_against(server, two_chapters(tmp_path / "job"), tmp_path / "out")
    assert report["status"] == status
    assert any(c["error"] for c in report["chapters"]) or report.get("error")
    assert_valid(report)


def test_an_interrupted_run_validates(make_server: MakeServer, tmp_path: Path) -> None:
    # The first request stalls until the server stops: the run is surely unfinished when
    # it gets SIGINT, however busy the machine.
    server = make_server(stall_s=100)
    server.queue_faults(["stall"])
    out = tmp_path / "out"
    process = start_cli(
        "run", two_chapters(tmp_path / "job"), "-o", out, "--base-url", server.base_url,
        "--progress", "none", "--concurrency", "1", "--timeout", "100",
        env=cli_env(COZE_API_TOKEN=TOKEN),
    )  # fmt: skip
    try:
        wait_for(lambda: server.stats.requests >= 1, what="the first request")
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
    assert process.returncode == 130
    report = read_report(out)
    assert report["status"] == "interrupted"
    assert {c["status"] for c in report["chapters"]} == {"pending"}
    assert_valid(report)


def test_shard_reports_and_their_merge_validate(tmp_path: Path) -> None:
    job = two_chapters(tmp_path / "job")
    reports = []
    for k in (1, 2):
        out = tmp_path / f"shard{k}"
        result = run_cli(
            "run", job, "-o", out, "--local", "--engine", "tone", "--progress", "none",
            "--shard", f"{k}/2",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        report = read_report(out)
        assert report["shard"] == {"k": k, "n": 2}
        assert_valid(report)
        reports.append(out / "report.json")
    merged = tmp_path / "merged.json"
    result = run_cli("merge-reports", *reports, "-o", merged)
    assert result.returncode == 0, result.stderr
    data = json.loads(merged.read_text(encoding="utf-8"))
    assert data["merged"] == {"reports": 2, "machine_s": data["merged"]["machine_s"],
                              "shards": 2, "missing_shards": []}  # fmt: skip
    assert [c["id"] for c in data["chapters"]] == ["ch01", "ch02"]
    assert_valid(data)
