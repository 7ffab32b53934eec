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
    shown = f"{x:.0f}x ({f['clock']} clock, one chapter)"
    note = (
        "A chapter is cut into one piece per core for both passes (measure; limit and LAME "
        "encode), run in worker processes, so one long chapter uses every core."
    )
    if "cpu_s" in f:
        # CPU seconds over the cores: what the machine gives when nothing else runs on it.
        x = idle_x(f)
        wall = f["audio_s"] / max(f["wall_s"]["new"]["chapter"], 1e-9)
        shown = (
            f"{x:.0f}x from CPU time on {f['workers']} cores; {wall:.0f}x wall at load "
            f"{f['load']['before'][0]:g}-{f['load']['after'][0]:g}"
        )
        note += " Wall time on a shared machine depends on its load, so CPU time is judged."
    return [(
        f"{f['minutes']:g}-min chapter at -18 LUFS: >= {FINISHING_TARGET_X:g}x real time",
        shown, x >= FINISHING_TARGET_X, note,
    )]  # fmt: skip


def idle_x(f: dict[str, Any], stage: str = "chapter") -> float:
    """Real-time factor of the new path's ``stage`` on free cores: audio over CPU per core."""
    cpu = float(f["cpu_s"]["new"][stage]) / max(int(f["workers"]), 1)
    return float(f["audio_s"]) / max(cpu, 1e-9)


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
    if "cpu_s" in f:
        text += "\n\n" + _clocks(f)
    t = f.get("threads")
    if t:
        text += (
            f"\n\nTwo such chapters, wall clock: {t['serial_s']} s one after the other, "
            f"{t['threads_s']} s in two threads ({t['speedup']:.2f}x)."
        )
    return text


def _clocks(f: dict[str, Any]) -> str:
    """Both clocks for each path's chapter (and chapter + m4b), with the load around them."""
    audio_s = float(f["audio_s"])
    rows = []
    for name in ("old", "previous", "new"):
        cpu, wall = f["cpu_s"][name], f["wall_s"][name]
        for what, stages in (("chapter", ("chapter",)), ("chapter + m4b", ("chapter", "m4b"))):
            if all(s in cpu for s in stages):
                c, w = sum(cpu[s] for s in stages), sum(wall[s] for s in stages)
                rows.append((name, what, round(w, 2), round(audio_s / w), round(c, 2),
                             round(audio_s / c)))  # fmt: skip
    load = f["load"]
    start, arrivals = f.get("workers_start"), f.get("arrivals")
    started = ""
    if start and arrivals:
        before = start["wall_s"] + arrivals["wall_s"]
        with_both = audio_s / (f["wall_s"]["new"]["chapter"] + before)
        started = (
            " The new chapter is timed as a run finishes it: its worker processes running and "
            "every part measured, because a run starts the workers at its first answer and "
            "measures each answer in them as it comes in, while synthesis goes on. Timed "
            f"apart: the workers' start {start['wall_s']} s wall ({start['cpu_s']} CPU-s), "
            f"the parts' measures {arrivals['wall_s']} s wall ({arrivals['cpu_s']} CPU-s); "
            f"the chapter with both: {with_both:.0f}x wall."
        )
    return (
        f"Both clocks, {f['workers']} finishing processes, load average (1, 5, 15 min) "
        f"{load['before']} before and {load['after']} after: wall figures are only as good "
        "as the load allows on a shared machine; CPU seconds count every thread and worker "
        f"process.{started}\n\n"
        + markdown_table(["path", "what", "wall s", "wall x", "CPU s", "x per core"], rows)
    )
