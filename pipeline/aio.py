"""Small async building blocks of the runner."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable

import anyio


async def first_of(*waitables: Awaitable[object]) -> None:
    """Return when the first of ``waitables`` finishes; cancel the others."""
    async with anyio.create_task_group() as tg:

        async def run(w: Awaitable[object]) -> None:
            await w
            tg.cancel_scope.cancel()

        for w in waitables:
            tg.start_soon(run, w)


async def until_interrupted(grace_s: float, interrupt: Callable[[], bool]) -> None:
    """Return when work must be cancelled after SIGINT or SIGTERM: at once if ``interrupt()``
    says False, else after ``grace_s`` or at a second signal, whichever comes first."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            if interrupt():
                await first_of(anyio.sleep(grace_s), signals.__anext__())
            return


__all__ = ["first_of", "until_interrupted"]
