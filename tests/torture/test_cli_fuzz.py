"""A fuzzer over the command line (issue 12): random option values and combinations for
run, plan, validate, say, voices and merge-reports, and random merge-reports inputs.

Every command runs in-process through ``main`` with a canary token in its environment,
against the embedded tone server (``--local``) or a tone server on 127.0.0.1; each must end
with exit 0, 1, 2 or 3, no exception escaping, and the canary nowhere in its output. The
CI-sized part runs in ``make test`` (derandomized, a few dozen examples); the full part is
marked slow (``make torture``).
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.cli import main
from pipeline.localserver import LocalServer, ServerConfig, serve_in_thread

CANARY = "pat_CANARYfuzz0123456789abcdef"
CI_EXAMPLES = 25
FULL_EXAMPLES = 400
EXITS = (0, 1, 2, 3)
JOB = "defaults: {voice_id: local-tone-1, response_format: wav, pause_ms: 0}\nchapters:\n" \
      "  - {id: a, text: hello there}\n  - {id: b, text: 你好}\n"

# Values a numeric option may get: fine ones, edges, and nonsense.
numbers = st.one_of(
    st.integers(min_value=-(10**6), max_value=10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["0", "1", "-0", "1e-300", "1e400", "nan", "-inf", "0x10", "", " 3",
                     "9" * 5000, "\x1b[2J", "1_000", "٣", "1.5"]),
)
texts = st.one_of(st.text(max_size=40), st.sampled_from(
    ["", " ", "\x00", "\x1b]0;pwned\x07", CANARY, f"say {CANARY}", "\u202e", "a\nb"]))
urls = st.sampled_from([
    "http://[::1", "http://[zz::1]:80", "http://127.0.0.1:99999", "ftp://x", "http://",
    "http://u:p@127.0.0.1:1", "http://127.0.0.1:0", "http://[::1]:1", "notaurl", "",
    "http://127.0.0.1:1",
])

OPTIONS: dict[str, dict[str, st.SearchStrategy[str]]] = {
    "run": {"--qps": numbers, "--concurrency": numbers, "--retries": numbers,
            "--burst": numbers, "--timeout": numbers, "--max-chunk-bytes": numbers,
            "--budget-characters": numbers, "--shard": texts, "--voice": texts,
            "--format": texts, "--sample-rate": numbers, "--progress": texts,
            "--base-url": urls, "--backend": texts},
    "plan": {"--qps": numbers, "--max-chunk-bytes": numbers, "--shard": texts,
             "--voice": texts, "--format": texts, "--base-url": urls},
    "validate": {"--voice": texts},
    "say": {"--qps": numbers, "--retries": numbers, "--max-chunk-bytes": numbers,
            "--speed": numbers, "--emotion-scale": numbers, "--loudness-rate": numbers,
            "--sample-rate": numbers, "--emotion": texts, "--context-texts": texts,
            "--voice": texts, "--timeout": numbers, "--base-url": urls},
    "voices": {"--timeout": numbers, "--base-url": urls, "--engine": texts},
}


@st.composite
def command_lines(draw: st.DrawFn, folder: str) -> list[str]:
    command = draw(st.sampled_from(sorted(OPTIONS)))
    chosen = draw(st.lists(st.sampled_from(sorted(OPTIONS[command])), max_size=4, unique=True))
    argv = [command]
    if command == "say":
        suffix = draw(st.sampled_from([".wav", ".mp3", "", ".xyz", "/"]))
        argv += [draw(texts) or "hi", "-o", f"{folder}/say{suffix}"]
    elif command in ("run", "plan", "validate"):
        argv.append(f"{folder}/job.yaml")
    if command == "run":
        argv += ["-o", f"{folder}/out", "--progress", "none"]
    for option in chosen:
        argv += [option, draw(OPTIONS[command][option])]
    if "--base-url" not in chosen and command != "validate":
        argv += draw(st.sampled_from([["--local", "--engine", "tone"], ["--local"], []]))
    return argv


def run_main(argv: list[str], environ: dict[str, str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv, environ=environ)
        except SystemExit as e:  # argparse's errors: exit 2, a usage line
            code = e.code if isinstance(e.code, int) else 2
    return code, out.getvalue() + err.getvalue()


def check(code: int, output: str, argv: list[str]) -> None:
    assert code in EXITS, (argv, code, output[-2000:])
    assert CANARY not in output, argv
    assert "Traceback" not in output, argv


def _settings(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, database=None,
                    derandomize=examples == CI_EXAMPLES,
                    suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def workspace() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="cli-fuzz-") as folder:
        (Path(folder) / "job.yaml").write_text(JOB, encoding="utf-8")
        yield Path(folder)


@pytest.fixture(scope="module")
def tone_server() -> Iterator[LocalServer]:
    with serve_in_thread(ServerConfig(engine="tone")) as server:
        yield server


def _options_test(examples: int, workspace: Path) -> None:
    @_settings(examples)
    @given(argv=command_lines(str(workspace)))
    def fuzz(argv: list[str]) -> None:
        code, output = run_main(argv, {"COZE_API_TOKEN": CANARY})
        check(code, output, argv)

    fuzz()


def test_fuzz_cli_options_ci(workspace: Path) -> None:
    _options_test(CI_EXAMPLES, workspace)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_fuzz_cli_options_full(workspace: Path) -> None:
    _options_test(FULL_EXAMPLES, workspace)


def test_fuzz_against_a_server_with_the_token(workspace: Path, tone_server: LocalServer) -> None:
    """A few real requests: the token is sent, and still appears nowhere in the output."""
    for argv in (["voices", "--json"], ["voices"],
                 ["run", f"{workspace}/job.yaml", "-o", f"{workspace}/srv", "--progress",
                  "none", "--summary", "--junit", f"{workspace}/j.xml"],
                 ["say", "hello", "-o", f"{workspace}/s.wav", "--voice", "local-tone-1"]):
        code, output = run_main([*argv, "--base-url", tone_server.base_url],
                                {"COZE_API_TOKEN": CANARY + "\n"})
        check(code, output, argv)
        assert code == 0, output


# --- merge-reports inputs -----------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=20,
)
CHAPTER = {"id": "a", "status": "ok", "output": "a.wav", "lines": 1, "chunks": 1,
           "characters": 5, "audio_seconds": 1.0, "error": None}


def _report(status: str, extra: dict[str, Any]) -> dict[str, Any]:
    base: dict[str, Any] = {
        "status": status, "started_at": "2026-01-01T00:00:00Z",
        "finished_at": "2026-01-01T00:00:01Z", "elapsed_s": 1.0,
        "totals": {"chapters": 1, "chunks": 1, "characters": 5, "audio_seconds": 1.0},
        "chapters": [CHAPTER], "error": None,
    }
    base.update(extra)
    return base


report_docs = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(_report, st.sampled_from(["ok", "partial", "failed", "aborted", "bogus"]),
              st.dictionaries(st.sampled_from(["shard", "chapters", "totals", "error",
                                               "started_at", "source", "merged"]),
                              json_values, max_size=3)).map(lambda d: json.dumps(d).encode()),
    st.binary(max_size=200),
    st.sampled_from([b"[" * 100000, b'{"a": 1e400}', b"NaN", b'{"status": "ok"' + b" " * 10,
                     json.dumps({"status": f"\x1b[2J{CANARY}"}).encode()]),
)


def _merge_test(examples: int) -> None:
    @_settings(examples)
    @given(docs=st.lists(report_docs, min_size=1, max_size=3))
    def fuzz(docs: list[bytes]) -> None:
        with tempfile.TemporaryDirectory(prefix="merge-fuzz-") as folder:
            paths = []
            for i, doc in enumerate(docs):
                path = Path(folder) / f"r{i}.json"
                path.write_bytes(doc)
                paths.append(str(path))
            argv = ["merge-reports", *paths, "-o", f"{folder}/merged.json", "--summary",
                    "--junit", f"{folder}/j.xml"]
            code, output = run_main(argv, {"COZE_API_TOKEN": CANARY})
            check(code, output, argv)
            assert "\x1b" not in output

    fuzz()


def test_fuzz_merge_reports_ci() -> None:
    _merge_test(CI_EXAMPLES)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_fuzz_merge_reports_full() -> None:
    _merge_test(FULL_EXAMPLES * 2)
