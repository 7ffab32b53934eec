"""jobs/ci-nightly.yml: every tts-pipeline command it runs exists, and the token is a secret.

The workflow's ``${{ ... }}`` expressions are replaced with what GitHub would put there for the
first matrix entry (matrix values, strategy.job-total, env values); any other expression in a
tts-pipeline command fails the test, so nothing goes unchecked.
"""

from __future__ import annotations

import argparse
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "jobs" / "ci-nightly.yml"
TOKEN = "COZE_API_TOKEN"
SECRET_REF = re.compile(r"\$\{\{\s*secrets\.COZE_API_TOKEN\s*\}\}")
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
SHELL_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
OPERATOR = re.compile(r"^[();<>|&]+$")


@dataclass(frozen=True)
class Command:
    job: str
    step: str
    argv: tuple[str, ...]  # after "tts-pipeline"

    def __str__(self) -> str:
        return f"jobs.{self.job}, step {self.step!r}: tts-pipeline {shlex.join(self.argv)}"


def load(path: Path = WORKFLOW) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def triggers(doc: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 reads a bare `on:` key as the boolean True.
    value = doc.get("on", doc.get(True))
    assert isinstance(value, dict), "the workflow has no `on:` triggers"
    return value


def _context(doc: dict[str, Any], job: dict[str, Any], step: dict[str, Any]) -> dict[str, str]:
    matrix = (job.get("strategy") or {}).get("matrix") or {}
    context = {f"matrix.{k}": str(v[0]) for k, v in matrix.items() if isinstance(v, list)}
    total = 1
    for values in matrix.values():
        total *= len(values) if isinstance(values, list) else 1
    context["strategy.job-total"] = str(total)
    env = {**(doc.get("env") or {}), **(job.get("env") or {}), **(step.get("env") or {})}
    context.update({f"env.{k}": str(v) for k, v in env.items()})
    return context


def _substitute(text: str, context: dict[str, str], where: str) -> str:
    def one(match: re.Match[str]) -> str:
        expression = match.group(1)
        assert expression in context, f"{where}: cannot check the expression {match.group(0)}"
        return context[expression]

    return EXPRESSION.sub(one, text)


def _shell_expand(token: str, context: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return context.get(f"env.{name}", match.group(0))

    return SHELL_VARIABLE.sub(one, token)


def _tokens(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    return list(lexer)


def _commands_in(script: str) -> list[list[str]]:
    """Every ``tts-pipeline ...`` simple command of a shell script, up to its next operator."""
    found = []
    for line in script.replace("\\\n", " ").splitlines():
        tokens = _tokens(line)
        for i, token in enumerate(tokens):
            at_start = i == 0 or OPERATOR.match(tokens[i - 1]) is not None
            if at_start and token.rsplit("/", 1)[-1] == "tts-pipeline":
                rest = tokens[i + 1:]
                end = next((j for j, t in enumerate(rest) if OPERATOR.match(t)), len(rest))
                found.append(rest[:end])
    return found


def tts_commands(doc: dict[str, Any]) -> list[Command]:
    commands = []
    for job_name, job in (doc.get("jobs") or {}).items():
        for index, step in enumerate(job.get("steps") or []):
            if "run" not in step:
                continue
            where = f"jobs.{job_name}.steps[{index}]"
            context = _context(doc, job, step)
            script = _substitute(str(step["run"]), context, where)
            for argv in _commands_in(script):
                expanded = tuple(_shell_expand(t, context) for t in argv)
                commands.append(Command(job_name, str(step.get("name", index)), expanded))
    return commands


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("build_parser() has no subcommands")


def option_problems(command: Command, parser: argparse.ArgumentParser) -> list[str]:
    """Subcommand and option names that build_parser() does not define (exact spelling)."""
    subs = subcommands(parser)
    if not command.argv or command.argv[0] not in subs:
        return [f"{command}: no subcommand {command.argv[:1]} (known: {', '.join(subs)})"]
    known = {s for a in subs[command.argv[0]]._actions for s in a.option_strings}
    problems = []
    for token in command.argv[1:]:
        if token == "--":
            break
        name = token.split("=", 1)[0]
        if token.startswith("-") and len(token) > 1 and not _is_number(token) and name not in known:
            problems.append(f"{command}: unknown option {name}")
    return problems


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def token_problems(doc: dict[str, Any], raw: str) -> list[str]:
    problems = []
    for where, value in _token_settings(doc, "workflow"):
        if not (isinstance(value, str) and SECRET_REF.fullmatch(value.strip())):
            problems.append(f"{where}: {TOKEN} is not ${{{{ secrets.{TOKEN} }}}}")
    for key in ("env",):
        if TOKEN in (doc.get(key) or {}):
            problems.append(f"workflow-level env exposes {TOKEN} to every step")
    for name, job in (doc.get("jobs") or {}).items():
        if TOKEN in (job.get("env") or {}):
            problems.append(f"jobs.{name}.env exposes {TOKEN} to every step of the job")
    if re.search(r"\bpat_\w{8,}|Bearer\s+\w", raw):
        problems.append("the workflow text holds what looks like a literal token")
    return problems


def _token_settings(node: Any, where: str) -> list[tuple[str, Any]]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == TOKEN:
                found.append((f"{where}.{key}", value))
            found.extend(_token_settings(value, f"{where}.{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_token_settings(value, f"{where}[{i}]"))
    return found


def _steps(doc: dict[str, Any], job: str) -> list[dict[str, Any]]:
    return list(doc["jobs"][job]["steps"])


def _uses(step: dict[str, Any], action: str) -> bool:
    return str(step.get("uses", "")).split("@")[0] == action


# ---------------------------------------------------------------- the workflow itself


def test_the_workflow_runs_tts_pipeline_commands() -> None:
    commands = tts_commands(load())
    assert {c.argv[0] for c in commands} >= {"validate", "plan", "run", "merge-reports"}


def test_every_subcommand_and_option_exists() -> None:
    parser = build_parser()
    problems = [p for c in tts_commands(load()) for p in option_problems(c, parser)]
    assert not problems, "\n".join(problems)


def test_every_command_parses_and_names_existing_files(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = build_parser()
    for command in tts_commands(load()):
        try:
            args, unknown = parser.parse_known_args(list(command.argv))
        except SystemExit:
            pytest.fail(f"{command}: {capsys.readouterr().err.strip()}")
        assert unknown == [], f"{command}: unknown arguments {unknown}"
        source = getattr(args, "source", None)
        if source is not None:
            assert (ROOT / source).is_file(), f"{command}: {source} does not exist"


def test_the_token_comes_from_the_secret_and_only_where_needed() -> None:
    doc = load()
    assert token_problems(doc, WORKFLOW.read_text(encoding="utf-8")) == []
    for job_name, job in doc["jobs"].items():
        for step in job["steps"]:
            has_token = TOKEN in (step.get("env") or {})
            runs = [argv for argv in _commands_in(str(step.get("run", ""))) if argv]
            synthesizes = any(a[0] == "run" and "--local" not in a for a in runs)
            assert has_token == synthesizes, f"jobs.{job_name} step {step.get('name')}"


def test_nightly_schedule_and_manual_trigger() -> None:
    on = triggers(load())
    crons = [entry["cron"] for entry in on["schedule"]]
    assert crons and all(len(c.split()) == 5 for c in crons)
    assert "workflow_dispatch" in on


def test_the_shards_share_the_account_rate() -> None:
    doc = load()
    job = doc["jobs"]["synthesize"]
    shards = job["strategy"]["matrix"]["shard"]
    assert shards == list(range(1, len(shards) + 1))
    assert job["strategy"]["fail-fast"] is False
    assert float(doc["env"]["QPS_PER_SHARD"]) * len(shards) <= float(doc["env"]["ACCOUNT_QPS"])
    run = next(c for c in tts_commands(doc) if c.argv[0] == "run")
    argv = list(run.argv)
    assert argv[argv.index("--shard") + 1] == f"1/{len(shards)}"
    assert argv[argv.index("--qps") + 1] == doc["env"]["QPS_PER_SHARD"]


def test_setup_installs_python_3_11_and_the_package() -> None:
    doc = load()
    for name in doc["jobs"]:
        steps = _steps(doc, name)
        setup = [s for s in steps if _uses(s, "actions/setup-python")]
        assert setup and str(setup[0]["with"]["python-version"]) == "3.11", name
        assert any(str(s.get("run", "")).strip() == "pip install ." for s in steps), name


def test_the_chunk_cache_is_restored_and_saved_where_the_run_keeps_it() -> None:
    doc = load()
    steps = _steps(doc, "synthesize")
    run = next(c for c in tts_commands(doc) if c.argv[0] == "run")
    cache_dir = run.argv[run.argv.index("--cache-dir") + 1]
    restore = next(s for s in steps if _uses(s, "actions/cache/restore"))
    save = next(s for s in steps if _uses(s, "actions/cache/save"))
    context = _context(doc, doc["jobs"]["synthesize"], restore)
    for step in (restore, save):
        assert _substitute(step["with"]["path"], context, "cache") == cache_dir
    assert "hashFiles(env.JOB_FILE" in restore["with"]["key"]
    assert save["with"]["key"] == "${{ steps.cache.outputs.cache-primary-key }}"
    order = [id(s) for s in steps]
    run_step = next(s for s in steps if "tts-pipeline run" in str(s.get("run", "")))
    assert order.index(id(restore)) < order.index(id(run_step)) < order.index(id(save))
    # An unchanged night saves nothing: the save depends on the run having got new audio.
    assert "new_audio" in save["if"] and "always()" in save["if"]


def test_chapters_and_reports_are_uploaded_even_after_a_failure() -> None:
    doc = load()
    steps = _steps(doc, "synthesize")
    uploads = [s for s in steps if _uses(s, "actions/upload-artifact")]
    paths = "\n".join(str(s["with"]["path"]) for s in uploads)
    assert "report.json" in paths and "junit.xml" in paths and "${{ env.OUT_DIR }}/" in paths
    assert all(s.get("if") == "always()" for s in uploads)
    assert all("matrix.shard" in s["with"]["name"] for s in uploads)


def test_the_report_job_merges_every_shard() -> None:
    doc = load()
    job = doc["jobs"]["report"]
    assert job["needs"] == "synthesize" and job["if"] == "always()"
    download = next(s for s in job["steps"] if _uses(s, "actions/download-artifact"))
    assert download["with"]["pattern"] == "report-shard-*"
    merge = next(c for c in tts_commands(doc) if c.argv[0] == "merge-reports")
    assert merge.argv[1] == f"{download['with']['path']}/report-shard-*/report.json"


# ---------------------------------------------------------------- the checkers can fail


BAD_WORKFLOW = """
on: {workflow_dispatch: {}}
env: {COZE_API_TOKEN: pat_0123456789abcdef}
jobs:
  a:
    strategy: {matrix: {shard: [1, 2]}}
    steps:
      - run: |
          tts-pipeline run jobs/x.yaml --no-such-option 3 --qps=2 && echo done
          tts-pipeline frobnicate
          tts-pipeline plan x.yaml --jsn > plan.json
"""


def test_the_checkers_catch_a_bad_workflow(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(BAD_WORKFLOW, encoding="utf-8")
    doc = load(path)
    commands = tts_commands(doc)
    assert [c.argv[0] for c in commands] == ["run", "frobnicate", "plan"]
    problems = [p for c in commands for p in option_problems(c, build_parser())]
    assert len(problems) == 3
    assert "unknown option --no-such-option" in problems[0]
    assert "no subcommand" in problems[1]
    assert "unknown option --jsn" in problems[2]  # no abbreviations either
    found = token_problems(doc, BAD_WORKFLOW)
    assert any("is not ${{ secrets.COZE_API_TOKEN }}" in p for p in found)
    assert any("workflow-level env" in p for p in found)
    assert any("literal token" in p for p in found)


def test_unknown_expressions_are_not_waved_through() -> None:
    doc = {"jobs": {"a": {"steps": [{"run": "tts-pipeline run ${{ inputs.job }}"}]}}}
    with pytest.raises(AssertionError, match="cannot check the expression"):
        tts_commands(doc)
