"""A module imported in a background thread while the caller goes on with its own work.

``run`` spends most of its start-up importing aiohttp, and aiohttp builds an SSL context at
import, loading the system's CA store in OpenSSL with the GIL released. Imported beside the
job's reading and planning, that part (and any wait of the one thread) overlaps the other's.

Import locks are per module, so two threads importing at once are safe unless both enter the
same circular imports from different ends (a deadlock, or a module seen half-initialized).
Hence ``SHARED``: the modules that the job's reading and the HTTP stack both import are
imported first, in the calling thread, so that the two threads never import the same module;
tests/test_layout.py checks that their import sets share nothing else.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence
from types import TracebackType

# Imported by both the job reader (pipeline.api, the manifest, the planner) and aiohttp.
SHARED = ("heapq", "locale", "shutil", "string", "tempfile")


class Preload:
    """``with Preload("aiohttp"):`` imports aiohttp in a thread for the block's duration.

    The block's end waits for the thread, whatever happened in the block, so no thread is
    left behind; an import that failed in the thread is raised there (unless the block
    itself raised, whose exception then wins).
    """

    def __init__(self, module: str, shared: Sequence[str] = SHARED) -> None:
        self._module = module
        self._shared = tuple(shared)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._load, name=f"preload {module}", daemon=True)

    def _load(self) -> None:
        try:
            importlib.import_module(self._module)
        except BaseException as e:  # handed to the caller's thread by __exit__
            self._error = e

    def __enter__(self) -> Preload:
        for name in self._shared:
            importlib.import_module(name)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._thread.join()
        if self._error is not None and exc is None:
            raise self._error
