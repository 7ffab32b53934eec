"""Shared fixtures: the anyio backend, the local Coze-compatible server, the text corpus.

The server fixtures run the server in its own thread (``serve_in_thread``), so the same
fixture serves sync tests (cozepy, subprocesses) and ``@pytest.mark.anyio`` tests alike.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from pipeline.localserver import LocalServer, ServerConfig, serve_in_thread

# cozepy imports authlib.jose, which warns about its own deprecation and installs an "always"
# filter for that warning at the front of the filter list, where no pytest setting can reach
# it. Importing it once here, with the filters restored afterwards, keeps the suite's output
# free of a warning that is not ours; the module is cached, so later imports are silent.
with warnings.catch_warnings():
    import authlib.deprecate  # noqa: F401  (installs that "always" filter, dropped on exit)

    warnings.simplefilter("ignore")  # now in front of it
    import cozepy  # noqa: F401

# In CI the property tests replay the same examples every run, so that a landing is never
# decided by the draw; on a developer's machine they keep exploring new ones.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

CORPUS_DIR = Path(__file__).resolve().parents[2] / "shared" / "corpus"


@pytest.fixture
def anyio_backend() -> str:
    # aiohttp runs only on asyncio.
    return "asyncio"


@pytest.fixture
def make_server() -> Iterator[Callable[..., LocalServer]]:
    """``make_server(**ServerConfig fields)`` -> a started tone-engine server, stopped after."""
    with ExitStack() as stack:

        def start(**overrides: Any) -> LocalServer:
            config = replace(ServerConfig(), **overrides)
            return stack.enter_context(serve_in_thread(config))

        yield start


@pytest.fixture
def local_server(make_server: Callable[..., LocalServer]) -> LocalServer:
    """A started tone-engine server with the default knobs; ``.base_url`` to talk to it."""
    return make_server()


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The shared public-domain texts (``../shared/corpus`` from the repository root)."""
    if not (CORPUS_DIR / "README.md").is_file():
        raise FileNotFoundError(
            f"the text corpus is missing: expected {CORPUS_DIR} (../shared/corpus from the repo)"
        )
    return CORPUS_DIR
