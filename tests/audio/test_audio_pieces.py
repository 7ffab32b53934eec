"""An mp3 chapter encoded in pieces on several cores decodes like one encoder's, seamlessly."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_audio_support import decode, dominant_frequency, write_part

from pipeline.audio import ChapterSpec, Part, assemble_chapter, mp3cores
from pipeline.audio.control import FinishCancelled, Watch
from pipeline.audio.model import AudioError
from pipeline.audio.mp3 import read_mp3
from pipeline.audio.partmeasure import joined as joined_measure
from pipeline.audio.pieces import Feedback, Span, cut_points, run_on_cores

RATE = 24000
FREQS = (220.0, 330.0, 495.0, 742.0)


def _speechlike(seed: int, seconds: float) -> np.ndarray:
    """Syllable-like: a tone with harmonics and some noise, swelling at 4 Hz, never silent."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * RATE)) / RATE
    f0 = FREQS[seed % len(FREQS)]
    voiced = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    envelope = 0.3 + 0.7 * np.clip(np.sin(2 * np.pi * 4.0 * t + seed), 0, None) ** 2
    noise = rng.normal(0, 0.05, len(t))
    return (0.25 * envelope * voiced + 0.3 * envelope * noise).astype(np.float32)


def _spec(tmp_path: Path, pauses: bool) -> ChapterSpec:
    parts = []
    for i in range(8):
        path = write_part(tmp_path / f"p{i}.mp3", "mp3", RATE, _speechlike(i, 7.3 + i % 3))
        parts.append(Part(path, f"text {i}", f"l{i}", pauses, 400 if pauses else 0))
    return ChapterSpec(
        tuple(parts), "mp3", RATE, tmp_path / "chapter.mp3", output_format="mp3",
        loudness_lufs=-16.0,
    )  # fmt: skip


def _finish(spec: ChapterSpec, out: Path, workers: int, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(mp3cores, "workers", lambda: workers)
    monkeypatch.setattr(mp3cores, "_LEAST_PIECE_S", 5.0)
    return assemble_chapter(replace(spec, out_path=out)).path


def _snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    """Signal to difference, in dB; inf when both are the same (silence included)."""
    noise = float(np.sum((reference - other) ** 2))
    signal = float(np.sum(reference**2))
    return float("inf") if noise == 0 else 10 * float(np.log10(max(signal, 1e-30) / noise))


@pytest.mark.parametrize("pauses", [False, True])
def test_pieces_join_without_a_gap_or_click(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pauses: bool
) -> None:
    spec = _spec(tmp_path, pauses)
    one = _finish(spec, tmp_path / "one.mp3", 1, monkeypatch)
    many = _finish(spec, tmp_path / "many.mp3", 4, monkeypatch)
    single, _ = decode(one)
    joined, _ = decode(many)
    measured = run_on_cores(
        [lambda fb: mp3cores.measure_group(spec, range(8), RATE, "mono", False, None, fb)],
        Watch(None, None),
    )[0]
    spans = joined_measure(spec, measured.parts, RATE).spans
    total = sum(s.content + s.pause for s in spans)
    # Every sample of the chapter, no more: the Info frame's delay and padding hold.
    assert len(single) == len(joined) == total
    cuts = cut_points(spans, 4, 576, round(5.0 * RATE))
    assert len(cuts) == 3
    if not pauses:
        # The cuts fall in sound here, where a seam would show.
        assert all(np.abs(single[c - 576 : c + 576]).max() > 0.05 for c in cuts)
    coding = _snr_db(single, joined)
    for cut in cuts:
        near = slice(cut - 4 * 576, cut + 4 * 576)
        # The joined file is the single encoder's, to far better than the codec's own noise
        # (about 25 dB here): nothing was dropped, doubled or shifted at the joint.
        assert _snr_db(single[near], joined[near]) > 40
        assert np.abs(single[near] - joined[near]).max() < 0.01
    assert coding > 40
    # And each part's sound is where it should be.
    offset = 0
    for i, span in enumerate(spans):
        middle = joined[offset + RATE // 2 : offset + span.content - RATE // 2]
        expected = FREQS[i % len(FREQS)]
        assert dominant_frequency(middle, RATE) == pytest.approx(expected, rel=0.05)
        offset += span.content + span.pause


def test_lame_states_the_delay_the_joiner_assumes(tmp_path: Path) -> None:
    path = write_part(tmp_path / "x.mp3", "mp3", RATE, _speechlike(1, 2.0))
    assert read_mp3(path.read_bytes()).delay == mp3cores.LAME_DELAY


def test_cuts_are_whole_frames_in_the_middle_of_pauses() -> None:
    spans = [Span(20_000, 0), Span(25_000, 3_000), Span(22_000, 0), Span(20_000, 2_400)]
    total = sum(s.content + s.pause for s in spans)
    cuts = cut_points(spans, 2, 576, 5_000)
    assert len(cuts) == 1 and cuts[0] % 576 == 0
    pause_start = 45_000  # 1200 samples from the even split
    assert pause_start <= cuts[0] <= pause_start + 3_000
    assert cut_points(spans, 2, 576, total) == []  # too short for two pieces
    no_pauses = [Span(s.content, 0) for s in spans]
    middle = sum(s.content for s in no_pauses) // 2
    assert abs(cut_points(no_pauses, 2, 576, 5_000)[0] - middle) <= 288


def test_a_failing_piece_stops_the_others_at_once() -> None:
    stopped = threading.Event()

    def fails(feedback: Feedback) -> None:
        time.sleep(0.05)
        raise AudioError("broken part")

    def long(feedback: Feedback) -> None:
        try:
            for i in range(1000):
                time.sleep(0.01)
                feedback.advance(i)
        except FinishCancelled:
            stopped.set()
            raise

    started = time.monotonic()
    with pytest.raises(AudioError, match="broken part"):
        run_on_cores([long, fails], Watch(None, None))
    assert stopped.is_set() and time.monotonic() - started < 1.0


def test_a_stop_reaches_every_piece(tmp_path: Path) -> None:
    stop = threading.Event()
    seen: list[float] = []

    def job(feedback: Feedback) -> None:
        for i in range(1000):
            time.sleep(0.01)
            feedback.advance(i * 0.01)

    def progress(done: float) -> None:
        seen.append(done)
        if done > 0.2:
            stop.set()

    started = time.monotonic()
    with pytest.raises(FinishCancelled):
        run_on_cores([job, job], Watch(progress, stop))
    assert time.monotonic() - started < 2.0 and seen == sorted(seen)
