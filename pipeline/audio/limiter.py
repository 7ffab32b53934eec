"""A gain followed by a look-ahead true-peak limiter, on streamed blocks of planar float.

The limiter estimates inter-sample peaks with a 4x polyphase interpolator (96 taps, twice
BS.1770's, which under-reads content above 0.8 Nyquist), asks for just enough gain
reduction at every sample to keep them under the ceiling, holds the lowest gain asked for
over the look-ahead and release windows (a sliding minimum) and smooths it with a moving
average no wider than either window. A sliding minimum followed by such an average can
never rise above what any sample inside it asked for, so the ceiling holds exactly for the
estimated peaks; a small margin covers the estimator's own error. Only samples near a peak
that could reach the ceiling (bounded by the interpolator's gain) are interpolated.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from pipeline.audio.model import TRUE_PEAK_CEILING_DBTP

Block = npt.NDArray[np.float32]
Array = npt.NDArray[np.float64]

_OVERSAMPLE = 4
_TAPS_PER_PHASE = 24  # 12 (BS.1770's) misses peaks of content above 0.8 Nyquist
_REACH = _TAPS_PER_PHASE // 2 + 2  # samples of context the peak estimate needs each side
_MARGIN_DB = 0.2  # the estimate can read a little under the exact inter-sample peak
_ATTACK_S = 0.005
_HOLD_S = 0.08


def _interpolator() -> Array:
    n = _OVERSAMPLE * _TAPS_PER_PHASE
    t = (np.arange(n) - (n - 1) / 2) / _OVERSAMPLE
    taps: Array = np.sinc(t) * np.kaiser(n, 6.0)
    phases = taps.reshape(_TAPS_PER_PHASE, _OVERSAMPLE).T
    # Each phase passes a constant unchanged.
    normalised: Array = phases / phases.sum(axis=1, keepdims=True)
    return normalised


_PHASES = _interpolator()
# No interpolated value can exceed the largest sample times this: the fast path's bound.
_GAIN_BOUND = float(np.abs(_PHASES).sum(axis=1).max())
# (taps, phases), taps oldest first: a window of samples in time order times this.
_PHASES_ASCENDING = np.ascontiguousarray(_PHASES[:, ::-1].T, dtype=np.float32)
# Rows per matrix product: small enough that OpenBLAS keeps it on this thread. Its threads
# for a product this thin cost 30x more than they save, and more on a busy machine.
_ROWS = 512


def sliding_min(values: Array | Block, width: int) -> Array | Block:
    """``out[i] = min(values[i : i + width])`` in O(n) (van Herk / Gil-Werman)."""
    n = len(values)
    pad = (-n) % width
    blocks = np.concatenate([values, np.full(pad, np.inf, dtype=values.dtype)]).reshape(-1, width)
    prefix = np.minimum.accumulate(blocks, axis=1).ravel()
    suffix = np.minimum.accumulate(blocks[:, ::-1], axis=1)[:, ::-1].ravel()
    result = np.minimum(suffix[: n - width + 1], prefix[width - 1 : n])
    return result


def peak_envelope(planar: Block, ceiling: float) -> Block:
    """Per sample, the highest estimated true peak between it and its neighbours.

    Exact (to the estimator) wherever it could reach ``ceiling``; elsewhere only the sample
    peak, which is then known to be far enough below. Only those few samples near loud
    peaks are interpolated: a gathered matrix product, not a convolution of the whole block.
    """
    peaks: Block = np.abs(planar[0]) if planar.shape[0] == 1 else np.abs(planar).max(axis=0)
    over = peaks > np.float32(ceiling / _GAIN_BOUND)
    if not over.any():
        return peaks
    # Samples within _REACH of one that could reach the ceiling: a dilation, as a running
    # count of such samples (one pass, where 2 * _REACH + 1 shifted ORs were 29).
    n = len(peaks)
    count = np.concatenate([np.zeros(_REACH + 1, np.int32), np.cumsum(over, dtype=np.int32)])
    count = np.concatenate([count, np.full(_REACH, count[-1], np.int32)])
    hot = np.flatnonzero(count[2 * _REACH + 1 :] > count[: n])
    delay = (_OVERSAMPLE * _TAPS_PER_PHASE - 1) // (2 * _OVERSAMPLE)
    pad = np.zeros(_TAPS_PER_PHASE, dtype=np.float32)
    envelope = peaks  # a new array in both cases: abs made it
    for channel in planar:
        source = np.concatenate([pad, channel.astype(np.float32, copy=False), pad])
        # windows[i] = x[hot[i] + delay - taps + 1 .. hot[i] + delay]: y[hot[i]] per phase.
        windows = sliding_window_view(source, _TAPS_PER_PHASE)[hot + delay + 1]
        interpolated = np.empty(len(hot), dtype=np.float32)
        for at in range(0, len(hot), _ROWS):
            piece = windows[at : at + _ROWS] @ _PHASES_ASCENDING
            interpolated[at : at + _ROWS] = np.abs(piece).max(axis=1)
        envelope[hot] = np.maximum(envelope[hot], interpolated)
    # envelope[n] holds the peaks between samples n - 1 and n: both must be turned down.
    np.maximum(envelope[:-1], envelope[1:], out=envelope[:-1])
    return envelope


class TruePeakLimiter:
    """Multiply by ``gain_db`` and keep true peaks under ``ceiling_dbtp``; streaming.

    Output lags input by the look-ahead: :meth:`process` returns what is ready and
    :meth:`flush` the rest, so the total out equals the total in, sample for sample.
    """

    def __init__(
        self,
        rate: int,
        channels: int,
        gain_db: float,
        ceiling_dbtp: float = TRUE_PEAK_CEILING_DBTP,
    ) -> None:
        self.gain = float(10 ** (gain_db / 20))
        self.ceiling = float(10 ** ((ceiling_dbtp - _MARGIN_DB) / 20))
        self._attack = max(_REACH, round(rate * _ATTACK_S))
        self._hold = max(self._attack, round(rate * _HOLD_S))
        self._half = self._attack  # smoothing half-width: no wider than attack or hold
        self._left = self._hold + self._half + _REACH
        self._right = self._attack + self._half + _REACH
        self._buffer = np.zeros((channels, 0), dtype=np.float32)
        self._emitted = 0  # leading samples of the buffer already returned (context only)
        self.reduced_samples = 0  # how many samples the limiter turned down, for reports

    def process(self, block: Block) -> Block:
        kept = self._buffer.shape[1]
        buffer = np.empty((block.shape[0], kept + block.shape[1]), dtype=np.float32)
        buffer[:, :kept] = self._buffer
        np.multiply(block, np.float32(self.gain), out=buffer[:, kept:])
        self._buffer = buffer
        return self._emit(buffer.shape[1] - self._right)

    def flush(self) -> Block:
        end = self._buffer.shape[1]
        pad = np.zeros((self._buffer.shape[0], self._right), dtype=np.float32)
        self._buffer = np.concatenate([self._buffer, pad], axis=1)
        return self._emit(end)

    def _emit(self, end: int) -> Block:
        start = self._emitted
        if end <= start:
            return self._buffer[:, :0]
        out = self._buffer[:, start:end]
        # Where no sample could reach the ceiling the gain alone is the answer: a multiply.
        if float(np.abs(self._buffer).max(initial=0.0)) * _GAIN_BOUND > self.ceiling:
            gains = self._gains(start, end)
            if gains is not None:
                self.reduced_samples += int(np.count_nonzero(gains < 1.0))
                out = out * gains
        keep = max(0, end - self._left)
        self._buffer = self._buffer[:, keep:]
        self._emitted = end - keep
        return out

    def _gains(self, start: int, end: int) -> Block | None:
        """Gain for buffer samples ``start:end`` (None: all 1); the buffer holds their context."""
        envelope = peak_envelope(self._buffer, self.ceiling)
        loud = envelope > np.float32(self.ceiling)
        if not loud.any():
            return None
        # What each sample asks for, as the shortfall below 1 (0 almost everywhere): its sum
        # below stays exact in float64 where a running sum of ones would round.
        short = np.zeros(len(envelope), dtype=np.float32)
        short[loud] = 1 - np.float32(self.ceiling) / envelope[loud]
        width = self._hold + self._attack + 1
        # held[j] = max(short[j - hold : j + attack + 1]) for j = start - half ... end + half
        lo = start - self._half - self._hold
        hi = end + self._half + self._attack
        if lo < 0:  # the chapter's very start: nothing before it asks for anything
            short = np.concatenate([np.zeros(-lo, dtype=np.float32), short])
            lo, hi = 0, hi - lo
        held = -sliding_min(-short[lo:hi], width)
        span = 2 * self._half + 1
        sums = np.concatenate([[0.0], np.cumsum(held, dtype=np.float64)])
        smoothed = 1 - ((sums[span:] - sums[:-span]) / span).astype(np.float32)
        gains: Block = np.minimum(smoothed[: end - start], np.float32(1.0))
        return gains


_PROFILE_WINDOW_S = 0.02
_MAX_MAKEUP_DB = 2.0


class LevelProfile:
    """Per 20 ms of a chapter, its sample peak and energy: what the limiter will cost.

    Gathered in the measuring pass (two float32 per 20 ms: 14 MB for ten hours of audio),
    so the gain can include the loudness the limiter is going to take off again.
    """

    def __init__(self, rate: int) -> None:
        self._window = max(1, round(rate * _PROFILE_WINDOW_S))
        self._rest = np.zeros(0, dtype=np.float32)
        self._peaks: list[npt.NDArray[np.float32]] = []
        self._energy: list[npt.NDArray[np.float32]] = []

    def add(self, block: Block) -> None:
        mono = np.abs(block).max(axis=0) if block.shape[0] > 1 else np.abs(block[0])
        joined = np.concatenate([self._rest, mono])
        whole = len(joined) // self._window * self._window
        windows = joined[:whole].reshape(-1, self._window)
        self._peaks.append(windows.max(axis=1))
        self._energy.append(np.square(windows, dtype=np.float64).sum(axis=1).astype(np.float32))
        self._rest = joined[whole:]

    @classmethod
    def joined(cls, profiles: list[LevelProfile]) -> LevelProfile:
        """The profiles of consecutive pieces as one (each piece's last partial window lost)."""
        whole = cls.__new__(cls)
        whole._window = profiles[0]._window
        whole._rest = np.zeros(0, dtype=np.float32)
        whole._peaks = [p for profile in profiles for p in profile._peaks]
        whole._energy = [e for profile in profiles for e in profile._energy]
        return whole

    def arrays(self) -> tuple[Array, Array]:
        peaks = np.concatenate([*self._peaks, np.zeros(1, np.float32)]).astype(np.float64)
        energy = np.concatenate([*self._energy, np.zeros(1, np.float32)]).astype(np.float64)
        return peaks, energy


def compensated_gain_db(
    gain_db: float, profile: LevelProfile, ceiling_dbtp: float = TRUE_PEAK_CEILING_DBTP
) -> float:
    """The gain that lands on the target after the limiter has taken its share.

    The limiter's cost is predicted from the profile (windows over the ceiling held down for
    the limiter's hold time, energy-weighted, as loudness is), and added to the gain; a few
    rounds, as more gain means more limiting. Capped at +2 dB: beyond it the material is
    too peaky for its target, and loudness is given up rather than squash it further.
    """
    peaks, energy = profile.arrays()
    total = float(energy.sum())
    if total <= 0:
        return gain_db
    ceiling = 10 ** ((ceiling_dbtp - _MARGIN_DB) / 20)
    reach = round((_HOLD_S + _ATTACK_S) / _PROFILE_WINDOW_S)
    makeup = 0.0
    for _ in range(4):
        linear = 10 ** ((gain_db + makeup) / 20)
        # True peaks stand a little over the sample peaks the profile holds.
        asked = np.minimum(1.0, ceiling / np.maximum(peaks * linear * 1.05, 1e-12))
        padded = np.concatenate([np.ones(reach), asked, np.ones(reach)])
        held = sliding_min(padded, 2 * reach + 1)
        loss_db = -10 * np.log10(float((energy * held**2).sum()) / total)
        makeup = min(float(loss_db), _MAX_MAKEUP_DB)
    return gain_db + makeup
