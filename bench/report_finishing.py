"""The ``finishing`` section of benchmarks.md: the old path and today's, stage by stage."""

from __future__ import annotations

from typing import Any

from bench.common import markdown_table

FINISHING_TARGET_X = 150.0  # issue 14: a 45-minute chapter's finishing at >= 150x real time
STAGES = ("decode", "measure", "gain+limit", "encode", "chapter", "m4b")


def finishing_x(f: dict[str, Any]) -> float:
    """Real-time factor of the new chapter stage (loudness, limiter, mp3 encode)."""
    return float(f["audio_s"]) / max(float(f["new"]["chapter"]), 1e-9)


def finishing_target(results: dict[str, Any]) -> list[tuple[str, str, bool, str]]:
    f = results.get("finishing")
    if not f:
        return []
    x = finishing_x(f)
    note = (
        "Finishing a chapter is one thread's work (decode, measure, limit, LAME); the runner "
        "finishes chapters in parallel, one per core, so a job of several chapters gets about "
        "the two-thread figure, but one long chapter is not split across cores yet."
    )
    return [(
        f"{f['minutes']:g}-min chapter at -18 LUFS: >= {FINISHING_TARGET_X:g}x real time",
        f"{x:.0f}x ({f['clock']} clock, one chapter)", x >= FINISHING_TARGET_X, note,
    )]  # fmt: skip


def finishing_section(results: dict[str, Any]) -> str:
    f = results["finishing"]
    audio_s = float(f["audio_s"])
    rows = []
    for stage in STAGES:
        o, n = max(f["old"][stage], 1e-3), max(f["new"][stage], 1e-3)
        rows.append((stage, o, round(audio_s / o), n, round(audio_s / n), round(o / n, 1)))
    text = (
        "## Finishing\n\n"
        f"One chapter of {f['minutes']:g} min ({f['parts']} espeak parts, mp3 from the API) to "
        f"mp3 at -18 LUFS, then a one-chapter m4b; {f['clock']} seconds, both paths in the "
        "same run (`python -m bench.finishing`).\n\n"
        + markdown_table(["stage", "old s", "old x", "new s", "new x", "old/new"], rows)
    )
    levels = f["levels"]
    text += "\n\n" + markdown_table(
        ["path", "chapter LUFS", "chapter dBTP", "m4b LUFS"],
        [(name, levels[name]["chapter"]["lufs"], levels[name]["chapter"]["dbtp"],
          levels[name]["m4b"]["lufs"]) for name in ("old", "new")],
    )  # fmt: skip
    t = f.get("threads")
    if t:
        text += (
            f"\n\nTwo such chapters, wall clock: {t['serial_s']} s one after the other, "
            f"{t['threads_s']} s in two threads ({t['speedup']:.2f}x)."
        )
    return text
