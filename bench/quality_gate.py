"""The quality gate on real espeak speech: false flags without faults, catches with them.

    .venv/bin/python -m bench.quality_gate TEXT_FILE [TEXT_FILE ...] [--fault-rate 0.05]
        [--voices local-en-female,local-en-male] [--format mp3] [--max-chunks N]
        [--kinds silent,truncated,padded,clipped,quiet]

Each file is cut like a job cuts it (paragraphs, then chunks of at most 1024 bytes), each
chunk is spoken by the espeak engine for each voice, encoded in ``--format`` and decoded
again, as an answer would be, then judged by the gate. With ``--fault-rate`` a seeded share
of chunks gets one of the local server's quality faults, and a flagged chunk is "requested
again" clean, as the runner does; the counts show what was caught and what was flagged
without reason. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pipeline.chunking import split_text
from pipeline.localserver.config import QUALITY_FAULT_KINDS
from pipeline.localserver.encode import encode
from pipeline.localserver.espeak import EspeakEngine
from pipeline.localserver.faults import Fault, spoil_samples, spoil_text
from pipeline.manifest import split_paragraphs
from pipeline.quality import QualityGate, decode_answer

RATE = 24000


def _answer(engine: EspeakEngine, text: str, voice: str, fmt: str, fault: Fault | None) -> Any:
    spoken = spoil_text(fault, text) if fault else text
    samples = engine.synthesize(spoken, voice, 1.0, None, 4.0, RATE)
    if fault:
        samples = spoil_samples(fault, samples, RATE)
    return decode_answer(encode(samples, RATE, fmt), fmt, RATE)


def run(
    files: list[Path],
    voices: list[str],
    fmt: str,
    rate: float,
    limit: int,
    kinds: tuple[str, ...] = QUALITY_FAULT_KINDS,
) -> dict[str, Any]:
    engine = EspeakEngine()
    gate = QualityGate()
    draw = random.Random(17)
    counts: Counter[str] = Counter()
    flagged_clean: list[dict[str, Any]] = []
    late: list[Any] = []
    faulty: dict[Any, str] = {}
    spread: dict[str, list[float]] = {k: [] for k in _SPREAD}
    for path in files:
        chunks = [c for p in split_paragraphs(path.read_text()) for c in split_text(p)]
        for voice in voices:
            chapter = f"{path.stem}:{voice}"
            for index, text in enumerate(chunks[:limit] if limit else chunks):
                fault = None
                if rate and draw.random() < rate:
                    fault = Fault(draw.choice(kinds))
                    counts[f"injected:{fault.kind}"] += 1
                counts["chunks"] += 1
                samples, sr = _answer(engine, text, voice, fmt, fault)
                verdict = gate.assess(text, voice, 1.0, chapter, samples, sr)
                if verdict.ok and fault:
                    counts[f"missed:{fault.kind}"] += 1
                elif not verdict.ok and fault:
                    counts[f"caught:{fault.kind}"] += 1
                    counts["extra_requests"] += 1
                    samples, sr = _answer(engine, text, voice, fmt, None)
                    verdict = gate.assess(text, voice, 1.0, chapter, samples, sr)
                if not fault:
                    _collect(spread, verdict.to_json())
                if not verdict.ok:
                    counts["flagged"] += 1
                    if not fault:
                        counts["extra_requests"] += 1
                    flagged_clean.append({"chapter": chapter, "chunk": index, **verdict.to_json()})
                    continue
                if fault:
                    faulty[(chapter, index)] = fault.kind
                late += gate.accept(text, voice, 1.0, chapter, verdict, (chapter, index))
    # An answer accepted in the warm-up and found bad later is requested again by the runner.
    for ref in late:
        kind = faulty.get(ref)
        counts[f"caught_late:{kind}" if kind else "late_without_fault"] += 1
        counts["extra_requests"] += 1
        if kind:
            counts[f"missed:{kind}"] -= 1
    counts["late_suspects"] = len(late)
    ranges = {k: _range(v) for k, v in spread.items() if v}
    return {
        "counts": dict(sorted(counts.items())),
        "clean_ranges": ranges,
        "flagged": flagged_clean[:20],
        "late": late,
    }


# What real speech does with each measure: the margin each default leaves.
_SPREAD = (
    "duration_ratio",
    "loudness_diff_lu",
    "loudness_lufs",
    "longest_gap_s",
    "edge_silence_s",
    "clipped_share",
    "rms_dbfs",
    "speech_rate",
)


def _collect(spread: dict[str, list[float]], v: dict[str, Any]) -> None:
    m = v["measures"]
    if "predicted_s" in v and v["predicted_s"] > 0:
        spread["duration_ratio"].append(m["duration_s"] and _speech(m) / v["predicted_s"])
    if "loudness_diff_lu" in v:
        spread["loudness_diff_lu"].append(v["loudness_diff_lu"])
    if "speech_rate" in v:
        spread["speech_rate"].append(v["speech_rate"])
    spread["edge_silence_s"].append(max(m["leading_silence_s"], m["trailing_silence_s"]))
    for key in ("loudness_lufs", "longest_gap_s", "clipped_share", "rms_dbfs"):
        spread[key].append(m[key])


def _speech(m: dict[str, float]) -> float:
    return m["duration_s"] - m["leading_silence_s"] - m["trailing_silence_s"]


def _range(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    n = len(ordered)
    return {
        "min": round(ordered[0], 4),
        "p1": round(ordered[n // 100], 4),
        "p50": round(ordered[n // 2], 4),
        "p99": round(ordered[min(n - 1, n * 99 // 100)], 4),
        "max": round(ordered[-1], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--voices", default="local-en-female,local-en-male")
    parser.add_argument("--format", default="mp3")
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--kinds", default=",".join(QUALITY_FAULT_KINDS))
    parser.add_argument("--max-chunks", type=int, default=0, help="per file and voice; 0: all")
    args = parser.parse_args()
    started = time.monotonic()
    voices, kinds = args.voices.split(","), tuple(args.kinds.split(","))
    result = run(args.files, voices, args.format, args.fault_rate, args.max_chunks, kinds)
    result["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(result, ensure_ascii=False, indent=1, default=str))


if __name__ == "__main__":
    main()
