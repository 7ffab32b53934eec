"""Small async building blocks of the runner."""

from __future__ import annotations

from collections.abc import Awaitable

import anyio


async def first_of(*waitables: Awaitable[object]) -> None:
    """Return when the first of ``waitables`` finishes; cancel the others."""
    async with anyio.create_task_group() as tg:

        async def run(w: Awaitable[object]) -> None:
            await w
            tg.cancel_scope.cancel()

        for w in waitables:
            tg.start_soon(run, w)


__all__ = ["first_of"]
