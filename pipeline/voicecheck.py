"""Voices checked before money is spent: every line's voice id and emotion against the host's
voice list (``GET /v1/audio/voices``, free), each problem named by FILE:LINE.

A host without a voice list (an error answer, a network failure) is no reason to refuse a run:
the check is then skipped and the caller says so.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.coze.client import MAX_VOICES, Voice
from pipeline.manifest.model import Job, Line

# More problems than this are summed up in one line: a misspelt default repeats on every line.
MAX_PROBLEMS = 20


def _where(line: Line) -> str:
    return line.file if line.lineno is None else f"{line.file}:{line.lineno}"


def _problem(line: Line, by_id: dict[str, Voice], complete: bool) -> tuple[str, str] | None:
    """What is wrong with ``line``'s voice or emotion and what helps (without its place)."""
    voice_id = line.params.voice_id
    voice = by_id.get(voice_id)
    if voice is None:
        if not complete:  # a list cut at MAX_VOICES may miss the voice
            return None
        return (f"voice_id {voice_id!r} is not in the host's voice list",
                "`tts-pipeline voices` lists them")
    emotion = line.params.emotion
    if emotion and emotion not in voice.emotions:
        offered = ", ".join(voice.emotions) or "none"
        return f"voice {voice_id!r} has no emotion {emotion!r}", f"it supports: {offered}"
    return None


def _message(where: str, problem: tuple[str, str], lines: int) -> str:
    what, hint = problem
    notes = ([f"{lines} lines"] if lines > 1 else []) + [hint]
    return f"{where}: {what} ({'; '.join(notes)})"


def voice_problems(job: Job, voices: Sequence[Voice]) -> list[str]:
    """One message per place (FILE:LINE) and problem, in job order, naming how many lines it
    covers: the lines of one paragraph or one row share a place, and are one message."""
    by_id = {v.voice_id: v for v in voices}
    complete = len(voices) < MAX_VOICES
    found: dict[tuple[str, tuple[str, str]], int] = {}  # (place, problem) -> lines, in order
    for chapter in job.chapters:
        for line in chapter.lines:
            problem = _problem(line, by_id, complete)
            if problem is not None:
                key = (_where(line), problem)
                found[key] = found.get(key, 0) + 1
    problems = [_message(where, problem, n) for (where, problem), n in found.items()]
    if len(problems) > MAX_PROBLEMS:
        more = len(problems) - MAX_PROBLEMS
        lines = sum(list(found.values())[MAX_PROBLEMS:])
        problems = [*problems[:MAX_PROBLEMS], f"... and {more} more like these ({lines} lines)"]
    return problems
