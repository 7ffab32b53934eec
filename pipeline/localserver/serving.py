"""Ways to run a ``LocalServer``: in a running event loop, in a thread, or in the foreground."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

import anyio

from pipeline.localserver.app import LocalServer
from pipeline.localserver.config import ServerConfig

THREAD_START_TIMEOUT_S = 30.0
THREAD_STOP_TIMEOUT_S = 30.0


@asynccontextmanager
async def running_server(config: ServerConfig | None = None) -> AsyncIterator[LocalServer]:
    """A started server on the current event loop, stopped on exit."""
    server = LocalServer(config)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@contextmanager
def serve_in_thread(config: ServerConfig | None = None) -> Iterator[LocalServer]:
    """A started server on its own event loop in a daemon thread, for synchronous callers.

    The caller's thread may read ``server.stats``, call ``queue_faults``/``reset`` and talk to
    ``server.base_url`` with any client, sync or async. On exit the server stops and the
    thread ends; an error while starting or stopping is raised here.
    """
    server = LocalServer(config)
    ready: concurrent.futures.Future[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = (
        concurrent.futures.Future()
    )
    stopped: concurrent.futures.Future[None] = concurrent.futures.Future()

    async def main() -> None:
        quit_event = asyncio.Event()
        async with server:
            ready.set_result((asyncio.get_running_loop(), quit_event))
            await quit_event.wait()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # handed to the caller's thread, which raises it
            (stopped if ready.done() else ready).set_exception(exc)
        else:
            stopped.set_result(None)

    thread = threading.Thread(target=run, name="tts-local-server", daemon=True)
    thread.start()
    loop, quit_event = ready.result(timeout=THREAD_START_TIMEOUT_S)
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(quit_event.set)
        thread.join(timeout=THREAD_STOP_TIMEOUT_S)
        stopped.result(timeout=0)


async def serve_forever(
    config: ServerConfig | None = None, on_ready: Callable[[str], None] | None = None
) -> None:
    """Serve until cancelled (Ctrl-C under ``asyncio.run``); ``on_ready(base_url)`` once bound.

    The library prints nothing: the CLI passes an ``on_ready`` that prints the URL.
    """
    async with running_server(config) as server:
        if on_ready is not None:
            on_ready(server.base_url)
        await anyio.sleep_forever()
