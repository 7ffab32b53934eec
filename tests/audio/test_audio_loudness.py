"""Loudness: FFmpeg's meter against the NumPy reference, and the true-peak limiter."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.audio.limiter import (
    LevelProfile,
    TruePeakLimiter,
    compensated_gain_db,
    sliding_min,
)
from pipeline.audio.loudness import LoudnessMeter, integrated_loudness, true_peak_dbtp

RATE = 24000


def _meter(samples: np.ndarray, rate: int, block: int) -> float:
    meter = LoudnessMeter(rate, "mono")
    for i in range(0, len(samples), block):
        meter.add(np.ascontiguousarray(samples[None, i : i + block], dtype=np.float32))
    return meter.integrated()


def _speechlike(seconds: float, seed: int) -> np.ndarray:
    """Bursts of speech-band noise at varying levels with gaps, and a few sharp tone bursts.

    Peaky like speech and, like speech, with nothing above 6 kHz: full-band noise has
    inter-sample peaks no short interpolator sees (see limiter.py).
    """
    rng = np.random.default_rng(seed)
    out = np.zeros(round(seconds * RATE), dtype=np.float64)
    at = 0
    while at < len(out):
        length = int(rng.integers(RATE // 5, RATE))
        level = float(rng.uniform(0.02, 0.1))
        out[at : at + length] = level * rng.standard_normal(len(out[at : at + length]))
        at += length + int(rng.integers(RATE // 20, RATE // 3))
    spectrum = np.fft.rfft(out)
    spectrum[np.fft.rfftfreq(len(out), 1 / RATE) > 6000] = 0
    out = np.fft.irfft(spectrum, len(out))
    burst = 0.9 * np.sin(2 * np.pi * 2000 * np.arange(RATE // 200) / RATE) * np.hanning(RATE // 200)
    for start in rng.integers(0, len(out) - len(burst), 20):
        out[start : start + len(burst)] += burst
    return out.astype(np.float32)


@pytest.mark.parametrize("rate", [16000, 24000, 44100])
def test_a_1khz_sine_reads_as_bs1770_says(rate: int) -> None:
    t = np.arange(rate * 5) / rate
    sine = np.sin(2 * np.pi * 997 * t) * 10 ** (-20 / 20)
    # A full-scale 1 kHz sine reads -3.01 LUFS; at -20 dBFS peak, -23.01.
    assert integrated_loudness(sine, rate) == pytest.approx(-23.01, abs=0.05)
    assert _meter(sine, rate, rate // 3) == pytest.approx(-23.01, abs=0.05)


def test_meter_and_reference_agree_on_gated_speechlike_audio() -> None:
    samples = _speechlike(30, seed=1)
    reference = integrated_loudness(samples, RATE)
    assert -40 < reference < -10
    assert _meter(samples, RATE, 7000) == pytest.approx(reference, abs=0.1)


def test_silence_has_no_loudness() -> None:
    silent = np.zeros(RATE * 3, dtype=np.float32)
    assert integrated_loudness(silent, RATE) == -math.inf
    assert _meter(silent, RATE, RATE) == -math.inf


def test_sliding_min_matches_the_obvious_one() -> None:
    values = np.random.default_rng(3).random(1000)
    for width in (1, 2, 7, 64, 1000):
        expected = [values[i : i + width].min() for i in range(len(values) - width + 1)]
        assert np.array_equal(sliding_min(values, width), expected)


def _limit(samples: np.ndarray, gain_db: float, block: int) -> tuple[np.ndarray, int]:
    limiter = TruePeakLimiter(RATE, 1, gain_db)
    pieces = [limiter.process(samples[None, i : i + block]) for i in range(0, len(samples), block)]
    pieces.append(limiter.flush())
    return np.concatenate(pieces, axis=1)[0], limiter.reduced_samples


def test_limiter_keeps_true_peaks_under_the_ceiling() -> None:
    samples = _speechlike(20, seed=2)
    gain = 6.0
    out, reduced = _limit(samples, gain, 5000)
    assert len(out) == len(samples)
    assert reduced > 0  # the bursts are way over the ceiling at this gain
    assert true_peak_dbtp(samples * 10 ** (gain / 20)) > 4
    assert true_peak_dbtp(out) <= -1.5 + 0.05
    # Away from the clicks the audio is the gain and nothing else.
    untouched = np.isclose(out, samples * np.float32(10 ** (gain / 20)), rtol=1e-6, atol=1e-7)
    assert untouched.mean() > 0.9


@pytest.mark.parametrize("target", [-23.0, -18.0, -16.0])
def test_the_gain_pays_for_what_the_limiter_takes(target: float) -> None:
    samples = _speechlike(20, seed=5)
    profile = LevelProfile(RATE)
    for i in range(0, len(samples), 7000):
        profile.add(samples[None, i : i + 7000])
    plain = target - integrated_loudness(samples, RATE)
    gain = compensated_gain_db(plain, profile)
    out, _ = _limit(samples, gain, 7000)
    assert gain >= plain
    assert integrated_loudness(out, RATE) == pytest.approx(target, abs=0.5)
    assert true_peak_dbtp(out) <= -1.5 + 0.05


def test_limiter_output_does_not_depend_on_block_sizes() -> None:
    samples = _speechlike(6, seed=4)
    for length, block in ((3000, 1), (len(samples), 333), (len(samples), 4800)):
        whole, _ = _limit(samples[:length], 12.0, length)
        pieces, _ = _limit(samples[:length], 12.0, block)
        assert np.allclose(pieces, whole, atol=1e-6)


def test_quiet_audio_passes_through_with_the_gain_only() -> None:
    samples = (0.01 * np.sin(np.arange(RATE * 2) * 0.1)).astype(np.float32)
    out, reduced = _limit(samples, 6.0, 1000)
    assert reduced == 0
    assert np.allclose(out, samples * 10 ** (6 / 20), atol=1e-7)
