"""Parts measured on their own (as a run does when each answer comes in), then put together."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_audio_support import decode, tone, write_part

from pipeline.audio import ChapterSpec, Part, assemble_chapter, mp3cores
from pipeline.audio.energy import gated_loudness
from pipeline.audio.loudness import integrated_loudness
from pipeline.audio.partmeasure import PartMeasure, joined, measure_part, usable

RATE = 24000


def _varied(i: int) -> np.ndarray:
    # Parts of different lengths and levels: the parts' grids and gates matter.
    rng = np.random.default_rng(i)
    seconds = 1.3 + 0.37 * (i % 5)
    level = 0.05 + 0.25 * float(rng.uniform())
    return tone(220.0 * (1 + i % 4), seconds, RATE, amplitude=level)


def _spec(tmp_path: Path, count: int = 10) -> ChapterSpec:
    parts = []
    for i in range(count):
        path = write_part(tmp_path / f"p{i}.mp3", "mp3", RATE, _varied(i))
        end = i % 3 != 1  # some chunks of one line follow each other without a pause
        text = f"Sentence {i}. And a clause, {i}."
        parts.append(Part(path, text, f"l{i}", end, 250 if end else 0))
    return ChapterSpec(
        tuple(parts), "mp3", RATE, tmp_path / "out" / "chapter.mp3", output_format="mp3",
        loudness_lufs=-18.0, subtitles=("srt",),
    )  # fmt: skip


def _measures(spec: ChapterSpec, with_levels: bool = True) -> list[PartMeasure | None]:
    return [measure_part(p.path, "mp3", RATE, RATE, None, with_levels) for p in spec.parts]


def test_parts_measured_apart_read_as_the_whole_chapter(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    measures = _measures(spec)
    chapter = joined(spec, [m for m in measures if m is not None], RATE)
    # The reference: the chapter's samples end to end with their pauses, measured whole.
    pieces = []
    for part, span in zip(spec.parts, chapter.spans, strict=True):
        samples, rate = decode(part.path)
        assert rate == RATE and len(samples) == span.content
        pieces += [samples, np.zeros(span.pause, np.float32)]
    whole = np.concatenate(pieces)
    reference = integrated_loudness(whole, RATE)
    assert gated_loudness(chapter.steps, RATE // 10) == pytest.approx(reference, abs=0.1)
    assert sum(s.content + s.pause for s in chapter.spans) == len(whole)


def test_a_chapter_with_every_part_measured_skips_its_first_pass_and_writes_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec(tmp_path)
    monkeypatch.setattr(mp3cores, "_LEAST_PIECE_S", 5.0)
    monkeypatch.setattr(mp3cores, "workers", lambda: 2)
    itself = assemble_chapter(replace(spec, out_path=tmp_path / "a" / "itself.mp3"))
    measures = _measures(spec)

    def no_first_pass(*args: object, **kwargs: object) -> None:
        raise AssertionError("measured again")

    monkeypatch.setattr(mp3cores, "measure_group", no_first_pass)
    seen: list[float] = []
    given = assemble_chapter(
        replace(spec, out_path=tmp_path / "b" / "given.mp3"), measures=measures,
        progress=seen.append,
    )  # fmt: skip
    assert given.path.read_bytes() == itself.path.read_bytes()
    srt = [p.read_text() for p in (*itself.subtitle_paths, *given.subtitle_paths)]
    assert srt[0] == srt[1]
    # The one pass left counts the whole chapter: progress still ends at its length.
    assert seen == sorted(seen) and seen[-1] >= given.duration_s


def test_measures_that_do_not_fit_the_chapter_are_not_used(tmp_path: Path) -> None:
    spec = _spec(tmp_path, 3)
    measures = _measures(spec)
    assert usable(spec, measures, RATE, "mono", True) is not None
    first = measures[0]
    assert first is not None
    unfit: list[list[PartMeasure | None]] = [
        [None, *measures[1:]],  # one part not measured
        [replace(first, path=tmp_path / "other.mp3"), *measures[1:]],  # a part's file replaced
        [replace(first, rate=16000), *measures[1:]],
        [replace(first, layout="stereo"), *measures[1:]],
        measures[:2],
    ]
    for wrong in unfit:
        assert usable(spec, wrong, RATE, "mono", True) is None
    # Without levels they serve a chapter without subtitles only.
    plain = _measures(spec, with_levels=False)
    assert usable(spec, plain, RATE, "mono", False) is not None
    assert usable(spec, plain, RATE, "mono", True) is None
