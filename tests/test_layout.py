"""The shape of the code: small modules, classes and functions; a light ``import pipeline``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from pipeline import cliargs, progress

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
