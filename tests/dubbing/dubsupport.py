"""Helpers for the dubbing tests (no tests here): a generated SRT, a job, onsets by energy."""

from __future__ import annotations

import json
import wave
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.localserver import tone_duration

SPEAKERS = ("ALICE", "BOB", "CAROL", "DAVE")
# Short lines every script repeats, and longer ones: with cues 1.5 s long, lines up to 24
# characters fit the tone engine (60 ms a character + 50 ms); FIT_LINES need at most 1.25x;
# LONG_LINES cannot fit even at 1.25x.
SHORT = ("Yes.", "Okay.", "No.", "Let's go!", "走吧！", "Wait for me.", "Right here.")
MEDIUM = tuple(f"Line number {n} of the scene." for n in range(20))  # 27-28 chars
# 26 chars (1.61 s: fits at 1.1x) and 30 chars (1.85 s: fits at 1.25x, just)
FIT_LINES = ("This line is a bit longer.", "This one is a little too long.")
LONG_LINES = ("This line is far too long to ever fit its cue.",)  # 47 chars
SLOT_S = 1.5
STEP_S = 2.0


def clock(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def cue_texts(count: int, *, overflow_every: int = 0) -> list[str]:
    """``count`` cue texts, mostly repeated short lines; every ``overflow_every``-th one is a
    line longer than its slot (in turn two that can fit at 1.25x and one that cannot)."""
    texts = []
    over = (*FIT_LINES, *LONG_LINES)
    for n in range(count):
        if overflow_every and n % overflow_every == overflow_every - 1:
            texts.append(over[(n // overflow_every) % len(over)])
        elif n % 3 == 2:
            texts.append(MEDIUM[n % len(MEDIUM)][:24])
        else:
            texts.append(SHORT[n % len(SHORT)])
    return texts


def write_srt(path: Path, texts: list[str]) -> list[tuple[float, float, str, str]]:
    """An SRT of ``texts`` with speaker prefixes; the cues (start, end, speaker, text)."""
    cues = []
    blocks = []
    for n, text in enumerate(texts):
        start = 1.0 + n * STEP_S
        end = start + SLOT_S
        speaker = SPEAKERS[n % len(SPEAKERS)]
        cues.append((start, end, speaker, text))
        blocks.append(f"{n + 1}\n{clock(start)} --> {clock(end)}\n{speaker}: {text}\n")
    path.write_text("\n".join(blocks), encoding="utf-8")
    return cues


def write_dub_job(
    folder: Path, srt: Path, *, fmt: str = "wav", output: dict[str, Any] | None = None,
    defaults: dict[str, Any] | None = None,
) -> Path:
    job = {
        "manifest": srt.name,
        "defaults": {"voice_id": "local-tone-1", "response_format": fmt, **(defaults or {})},
        "output": {"clips": True, **(output or {})},
    }
    path = folder / "job.yaml"
    path.write_text(json.dumps(job), encoding="utf-8")  # JSON is YAML
    return path


def onsets(
    samples: npt.NDArray[np.float32], rate: int, starts: list[float], window_s: float = 0.1,
    threshold: float = 0.01,
) -> list[float]:
    """Where the sound starts near each cue start: the first sample above ``threshold``
    within ``window_s`` either side (the tone engine's lines begin with a 5 ms fade-in)."""
    found = []
    for start in starts:
        lo = max(0, round((start - window_s) * rate))
        hi = round((start + window_s) * rate)
        loud = np.flatnonzero(np.abs(samples[lo:hi]) > threshold)
        found.append((lo + int(loud[0])) / rate if loud.size else float("nan"))
    return found


def tone_seconds(text: str, speed: float = 1.0) -> float:
    return tone_duration(text, speed)


def read_wav(path: Path) -> tuple[npt.NDArray[np.float32], int]:
    """A 16-bit mono WAVE file's samples as floats (a long track reads in one go)."""
    with wave.open(str(path), "rb") as f:
        assert (f.getnchannels(), f.getsampwidth()) == (1, 2)
        data = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
        return (data / 32768).astype(np.float32), f.getframerate()
