"""What LAME quality 7 without the bit reservoir costs on speech, against quality 5 with it.

    .venv/bin/python -m bench.mp3_quality              # 3 minutes of eSpeak speech
    .venv/bin/python -m bench.mp3_quality --minutes 1

The chapter's PCM (eSpeak parts as bench.finishing makes them, gained and limited to -18 LUFS
as finishing does) is encoded at 64 kbit/s with each LAME setting, decoded, and compared with
the PCM it came from: SNR, segmental SNR (20 ms windows with speech), log-spectral distance
(20 ms windows, dB RMS over 100 Hz to 10 kHz) and CPU speed. A waveform measure does not
hear like an ear: LAME's noise shaping (quality 5 and better) moves noise under the speech
on purpose, which lowers SNR; the spectral distance is the fairer of the figures.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from bench.common import TEXTS
from bench.finishing import RATE, chapter_spec, make_parts
from pipeline.audio import mp3cores
from pipeline.audio.control import Watch
from pipeline.audio.limiter import TruePeakLimiter
from pipeline.audio.loudness import integrated_loudness
from pipeline.audio.process import chapter_blocks

Samples = npt.NDArray[np.float64]
SETTINGS = {
    "q5 + reservoir (previous)": {"compression_level": "5", "reservoir": "1"},
    "q5, no reservoir": {"compression_level": "5", "reservoir": "0"},
    "q7 + reservoir": {"compression_level": "7", "reservoir": "1"},
    "q7, no reservoir (new)": {"compression_level": "7", "reservoir": "0"},
}
_WINDOW = RATE // 50  # 20 ms


def speech(minutes: float, work: Path) -> npt.NDArray[np.float32]:
    parts = make_parts(work / "parts", 40, TEXTS)
    spec = chapter_spec(parts, minutes, work / "unused.mp3")
    pcm = np.concatenate(list(chapter_blocks(spec, RATE, "mono", None, Watch(None, None))), 1)
    limiter = TruePeakLimiter(RATE, 1, -18.0 - integrated_loudness(pcm, RATE))
    return np.concatenate([limiter.process(pcm), limiter.flush()], axis=1)


def round_trip(pcm: npt.NDArray[np.float32], options: dict[str, str]) -> tuple[Samples, float]:
    """Decoded samples (aligned with ``pcm``) and the encoder's CPU seconds."""
    mp3cores.LAME_OPTIONS.clear()
    mp3cores.LAME_OPTIONS.update(options)
    blocks = (pcm[:, i : i + RATE] for i in range(0, pcm.shape[1], RATE))
    start = time.process_time()
    frames = list(mp3cores.encode_frames(blocks, RATE, "mono"))
    cpu = time.process_time() - start
    codec = av.CodecContext.create("mp3float", "r")
    out = [f.to_ndarray()[0] for data in frames for f in codec.decode(av.Packet(data))]
    decoded = np.concatenate(out).astype(np.float64)
    delay = mp3cores.LAME_DELAY + 529  # encoder and decoder delay: the Info frame's job
    return decoded[delay : delay + pcm.shape[1]], cpu


def measures(reference: Samples, decoded: Samples) -> dict[str, float]:
    n = len(decoded) // _WINDOW * _WINDOW
    ref, dec = reference[:n].reshape(-1, _WINDOW), decoded[:n].reshape(-1, _WINDOW)
    energy = (ref**2).sum(axis=1)
    noise = ((ref - dec) ** 2).sum(axis=1)
    voiced = energy > energy.max() * 1e-4
    seg = 10 * np.log10(energy[voiced] / np.maximum(noise[voiced], 1e-20))
    window = np.hanning(_WINDOW)
    spec_ref = np.abs(np.fft.rfft(ref[voiced] * window, axis=1)) ** 2
    spec_dec = np.abs(np.fft.rfft(dec[voiced] * window, axis=1)) ** 2
    freqs = np.fft.rfftfreq(_WINDOW, 1 / RATE)
    band = (freqs >= 100) & (freqs <= 10_000)
    diff = 10 * np.log10((spec_ref[:, band] + 1e-10) / (spec_dec[:, band] + 1e-10))
    return {
        "snr_db": round(float(10 * np.log10(energy.sum() / noise.sum())), 2),
        "segmental_snr_db": round(float(np.clip(seg, -10, 35).mean()), 2),
        "lsd_db": round(float(np.sqrt((diff**2).mean(axis=1)).mean()), 3),
    }


def run(minutes: float, work: Path) -> dict[str, Any]:
    pcm = speech(minutes, work)
    reference = pcm[0].astype(np.float64)
    saved = dict(mp3cores.LAME_OPTIONS)
    results: dict[str, Any] = {"audio_s": round(pcm.shape[1] / RATE, 1)}
    try:
        for name, options in SETTINGS.items():
            decoded, cpu = round_trip(pcm, options)
            results[name] = measures(reference, decoded) | {"x_per_core": round(
                pcm.shape[1] / RATE / cpu)}  # fmt: skip
    finally:
        mp3cores.LAME_OPTIONS.clear()
        mp3cores.LAME_OPTIONS.update(saved)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--dir", type=Path, default=Path("out/bench-finishing"))
    args = parser.parse_args()
    results = run(args.minutes, args.dir)
    print(f"{results['audio_s']} s of eSpeak speech at -18 LUFS, 64 kbit/s mono, {RATE} Hz")
    print(f"{'setting':28} {'SNR':>7} {'segSNR':>7} {'LSD dB':>7} {'x/core':>7}")
    for name in SETTINGS:
        r = results[name]
        print(
            f"{name:28} {r['snr_db']:7.2f} {r['segmental_snr_db']:7.2f} {r['lsd_db']:7.3f} "
            f"{r['x_per_core']:7d}"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
