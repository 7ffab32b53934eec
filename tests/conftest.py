"""Shared fixtures: the anyio backend, the local Coze-compatible server, the external corpus.

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

# The external public-domain corpus is optional: only its own tests need it (see corpus_dir).
CORPUS_VARIABLE = "TTS_CORPUS_DIR"


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
    """The external corpus of public-domain texts (``*.txt``): the directory that
    ``$TTS_CORPUS_DIR`` names, else the test is skipped (the project's own texts in
    ``tests/data/texts`` cover the same ground)."""
    named = os.environ.get(CORPUS_VARIABLE)
    if not named:
        pytest.skip(f"{CORPUS_VARIABLE} is not set: set it to a directory of *.txt texts to run "
                    "the tests over the external corpus")
    path = Path(named)
    if not path.is_dir():
        pytest.skip(f"{CORPUS_VARIABLE}={named} is not a directory")
    return path
