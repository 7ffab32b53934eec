"""The shape of the code: small modules, classes and functions; a light ``import pipeline``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from helpers import cli_env

from pipeline import cliargs, progress

if TYPE_CHECKING:
    from pipeline.localserver import LocalServer

PACKAGE = Path(__file__).resolve().parent.parent / "pipeline"
MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 300
MAX_FUNCTION_LINES = 60
# Exceptions to the limits above ("path": "module" or "path:name"); this list only shrinks.
KNOWN_LARGE: dict[str, str] = {}


def _too_big() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = str(path.relative_to(PACKAGE))
        source = path.read_text(encoding="utf-8")
        if len(source.splitlines()) > MAX_MODULE_LINES and KNOWN_LARGE.get(name) != "module":
            found.append(f"{name}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                length = node.end_lineno - node.lineno + 1
                limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
                if length > limit and KNOWN_LARGE.get(f"{name}:{node.name}") is None:
                    found.append(f"{name}:{node.lineno} {node.name}: {length} lines")
    return found


def test_modules_classes_and_functions_stay_small() -> None:
    assert _too_big() == []


def test_import_pipeline_loads_nothing_heavy() -> None:
    code = (
        "import pipeline, sys; print(sorted(m for m in sys.modules if m.startswith(("
        "'av', 'numpy', 'aiohttp.web', 'pipeline.localserver', 'tqdm'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        cwd=PACKAGE.parent,
    )  # fmt: skip
    assert out.stdout.strip() == "[]"


def test_the_cli_module_loads_nothing_heavy() -> None:
    code = (
        "import pipeline.cli, sys; print(sorted(m for m in sys.modules if m.startswith(("
        "'av', 'numpy', 'aiohttp', 'anyio', 'pipeline.localserver', 'pipeline.runner', "
        "'tqdm', 'yaml', 'importlib.metadata'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        cwd=PACKAGE.parent,
    )  # fmt: skip
    assert out.stdout.strip() == "[]"


def test_the_runners_import_path_loads_no_audio_stack() -> None:
    # Everything a run needs before its first request: PyAV, numpy and the local server
    # only come in after the first answer (issue 18), so a small job starts fast.
    code = (
        "import sys\n"
        "import pipeline.runner, pipeline.finishing, pipeline.gatekeeper, pipeline.cli\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('av', 'numpy') "
        "or m.startswith('pipeline.localserver')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        cwd=PACKAGE.parent,
    )  # fmt: skip
    assert out.stdout.strip() == "[]"


def test_the_clis_progress_modes_are_progress_modes() -> None:
    assert cliargs.PROGRESS_MODES == progress.PROGRESS_MODES


# What `run` may have imported when it opens its first connection (issue 18, start-up): the
# audio stack, the local server, the offline commands and importlib.metadata come later or
# never. The hook prints sys.modules at the first socket.connect, then the run goes on.
_FIRST_CONNECT = """
import sys
def hook(event, args):
    if event == "socket.connect" and not hook.seen:
        hook.seen = True
        print("LOADED", " ".join(sorted(sys.modules)), file=sys.stderr, flush=True)
hook.seen = False
sys.addaudithook(hook)
from pipeline.cli import main
sys.exit(main(sys.argv[1:]))
"""
NOT_BEFORE_THE_FIRST_REQUEST = (
    "av", "numpy", "tqdm", "importlib.metadata", "aiohttp.web", "pipeline.localserver",
    "pipeline.cli_local", "pipeline.checkdir", "pipeline.quality.measures", "pipeline.audio.join",
)  # fmt: skip


def test_run_imports_nothing_it_does_not_need_before_its_first_connection(
    tmp_path: Path, local_server: LocalServer
) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(
        "defaults: {voice_id: local-tone-1, response_format: wav}\n"
        "chapters: [{id: a, lines: [One., Two.]}]\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-c", _FIRST_CONNECT, "run", str(job), "-o", str(tmp_path / "out"),
         "--base-url", local_server.base_url, "--progress", "none"],
        capture_output=True, text=True, cwd=PACKAGE.parent, timeout=60,
        env=cli_env(COZE_API_TOKEN="test-token"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    loaded = next(line for line in done.stderr.splitlines() if line.startswith("LOADED "))
    modules = loaded.split()[1:]
    assert "aiohttp" in modules  # the hook did see the run's connection
    early = [m for m in modules if m.split(".")[0] in ("av", "numpy", "tqdm") or m.startswith(
        NOT_BEFORE_THE_FIRST_REQUEST)]  # fmt: skip
    assert early == []
    assert local_server.stats.audio_answers == 2
