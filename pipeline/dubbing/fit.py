"""Fit ``speed``: a line longer than its cue's slot is asked again, just fast enough.

The new speed is ``old * audio / slot * 1.02`` (2% to spare: speech does not shrink exactly
with speed), capped by the line's ``max_speed`` and the API's top speed; one more request per
line, counted and budgeted like any other (the runner sends it), both answers cached. A line
already at its cap is not asked again. What still overflows after the second answer is
reported by the track (``LineResult.overflow_s``). Fit ``stretch`` is local: see ``track``.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from pipeline.coze.speech import SPEED_RANGE
from pipeline.dubbing.model import OVERFLOW_TOLERANCE_S, slot_of
from pipeline.errors import ApiError, FatalApiError
from pipeline.planning import Chunk, Plan

MARGIN = 1.02
# The API's speed field has this many decimals in practice; a finer one buys nothing.
_SPEED_DECIMALS = 3

if TYPE_CHECKING:
    from pipeline.finishing import ChapterState
    from pipeline.runner import Runner

Ask = Callable[[Chunk], Awaitable[Path | None]]


@dataclass(frozen=True)
class RunnerAsk:
    """``Ask`` through a runner: the cache first, then the runner's own send (in-flight slot,
    rate limiter, budget, retries, counted in its totals), as for any chunk.

    It lives here, not in the runner, to keep the concurrency core to its own concerns; it
    uses the runner's internals on purpose, as a friend of it.
    """

    runner: Runner
    state: ChapterState

    async def __call__(self, chunk: Chunk) -> Path | None:
        from pipeline.runner import _Item, _Stopped, _StorageFailed

        run = self.runner
        key = run._cache.key(chunk.request().body(), run._config.host_id)
        found = await anyio.to_thread.run_sync(run._cache.get, key)
        if found is not None:
            run._totals.cache_hits += 1
            return found
        try:
            return await run._synthesize(_Item(self.state.index, -1, key), chunk)
        except FatalApiError as e:  # a budget spent too: let the requests in flight land
            run._stop_gracefully(e)
        except (ApiError, _Stopped, _StorageFailed):
            pass  # the line keeps its first answer; the track reports what still overflows
        return None


def refit_speed(old: float | None, audio_s: float, slot_s: float, max_speed: float) -> float | None:
    """The speed to ask again at, or None when the line fits or is already at its cap."""
    if slot_s <= 0 or audio_s <= slot_s + OVERFLOW_TOLERANCE_S:
        return None
    base = old if old is not None else 1.0
    cap = min(max_speed, SPEED_RANGE[1])
    wanted = base * audio_s / slot_s * MARGIN
    new = round(min(wanted, cap), _SPEED_DECIMALS)
    return new if new > base else None


def refit_bound(plan: Plan) -> tuple[int, int]:
    """(requests, characters) that fit ``speed`` may add to a run of ``plan`` at most.

    A worst case, for ``plan``: as if every line that could be asked again did overflow
    (timed, fit ``speed``, a slot, below its cap); each of its chunks is one more request,
    a chapter's identical chunks once (as ``refit_chapter`` sends them), none in the cache.
    """
    requests = characters = 0
    for chapter in plan.chapters:
        lines = chapter.chapter.lines
        distinct: dict[tuple[str, object], int] = {}
        for chunk in chapter.chunks:
            line = lines[chunk.line_index]
            if line.fit != "speed":
                continue
            slot = slot_of(lines, chunk.line_index)
            base = line.params.speed if line.params.speed is not None else 1.0
            if slot is None or slot <= 0 or base >= min(line.max_speed, SPEED_RANGE[1]):
                continue
            distinct.setdefault((chunk.text, chunk.params), chunk.characters)
        requests += len(distinct)
        characters += sum(distinct.values())
    return requests, characters


def _line_seconds(paths: Sequence[Path], fmt: str, rate: int) -> float:
    from pipeline.audio import check_audio  # PyAV: only when a line is fitted

    return sum(check_audio(p.read_bytes(), fmt, rate) for p in paths)


def _candidates(state: ChapterState, stop: threading.Event | None) -> list[tuple[int, float]]:
    """(line index, new speed) of every line of ``state`` to ask again (blocking: reads);
    none once ``stop`` is set: a stopped run asks nothing more, and reads no further."""
    plan = state.plan
    lines = plan.chapter.lines
    found = []
    for index, line in enumerate(lines):
        if stop is not None and stop.is_set():
            return []
        if line.fit != "speed" or line.start is None:
            continue
        slot = slot_of(lines, index)
        if slot is None:
            continue
        paths = [p for c, p in zip(plan.chunks, state.parts, strict=True)
                 if c.line_index == index and p is not None]
        seconds = _line_seconds(paths, plan.response_format, plan.sample_rate)
        speed = refit_speed(line.params.speed, seconds, slot, line.max_speed)
        if speed is not None:
            found.append((index, speed))
    return found


async def refit_chapter(state: ChapterState, ask: Ask) -> int:
    """Ask again, faster, for every line of ``state`` that overflows its slot with fit
    ``speed``; swap in the new chunk files. Returns how many lines were asked again.

    ``ask`` sends one chunk (through the cache, the budget and the rate limiter) and gives
    its file, or None when it could not be had: that line keeps its first answer. Lines that
    repeat a text ask once: a script's repeated lines are paid for once.
    """
    if all(line.fit != "speed" for line in state.plan.chapter.lines):
        return 0  # the usual chapter: no thread, no file read
    stop = ask.runner._finish.cancel if isinstance(ask, RunnerAsk) else None
    found = await anyio.to_thread.run_sync(_candidates, state, stop)
    if not found:
        return 0
    chunks = state.plan.chunks
    lines: list[tuple[int, float, list[int], list[Chunk]]] = []
    distinct: dict[tuple[str, object], Chunk] = {}
    for index, speed in found:
        mine = [k for k, c in enumerate(chunks) if c.line_index == index]
        faster = [replace(chunks[k], params=replace(chunks[k].params, speed=speed)) for k in mine]
        lines.append((index, speed, mine, faster))
        for chunk in faster:
            distinct.setdefault((chunk.text, chunk.params), chunk)
    got: dict[tuple[str, object], Path | None] = {}

    async def one(key: tuple[str, object], chunk: Chunk) -> None:
        got[key] = await ask(chunk)

    async with anyio.create_task_group() as tg:
        for key, chunk in distinct.items():
            tg.start_soon(one, key, chunk)
    for index, speed, mine, faster in lines:
        paths = [got.get((c.text, c.params)) for c in faster]
        if all(p is not None for p in paths):
            for k, path in zip(mine, paths, strict=True):
                state.parts[k] = path
            state.refits[state.plan.chapter.lines[index].id] = speed
    return len(found)
