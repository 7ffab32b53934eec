"""The ``start``/``end`` cells of a timed CSV row: seconds, checked together."""

from __future__ import annotations

from collections.abc import Callable

from pipeline.books.timecode import TimecodeError, parse_timecode


def cue_times(
    start_cell: str, end_cell: str, line: int, problem: Callable[[int | None, str], None]
) -> tuple[float | None, float | None]:
    """(start, end) in seconds, None where a cell is empty; bad cells reported at ``line``.

    ``end`` without ``start`` means nothing (a slot needs both ends), so it is refused; an
    ``end`` must come after its ``start``.
    """
    start = _time("start", start_cell, line, problem)
    end = _time("end", end_cell, line, problem)
    if end is not None and start is None and not start_cell:
        problem(line, "end is set but start is empty: a cue needs its start time")
        return None, None
    if start is not None and end is not None and end <= start:
        problem(line, f"end ({end_cell}) must come after start ({start_cell})")
        return start, None
    return start, end


def _time(
    name: str, cell: str, line: int, problem: Callable[[int | None, str], None]
) -> float | None:
    if not cell:
        return None
    try:
        return parse_timecode(cell)
    except TimecodeError as e:
        problem(line, f"{name}: {e}")
        return None
