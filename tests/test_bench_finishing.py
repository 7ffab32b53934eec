"""The finishing section of benchmarks.md: the table and the 150x target line."""

from __future__ import annotations

from bench.report_finishing import FINISHING_TARGET_X, finishing_section, finishing_target

STAGES = ("decode", "measure", "gain+limit", "encode", "chapter", "m4b")


def _summary(new_chapter_s: float) -> dict[str, object]:
    old = dict.fromkeys(STAGES, 60.0)
    new = dict.fromkeys(STAGES, 10.0) | {"chapter": new_chapter_s}
    level = {"seconds": 600.0, "lufs": -18.0, "dbtp": -1.6}
    return {
        "minutes": 10.0,
        "parts": 100,
        "audio_s": 600.0,
        "clock": "cpu",
        "old": old,
        "new": new,
        "levels": {name: {"chapter": level, "m4b": level} for name in ("old", "new")},
        "threads": {"serial_s": 40.0, "threads_s": 25.0, "speedup": 1.6},
    }


def test_the_target_is_met_only_at_150x_real_time() -> None:
    fast = finishing_target({"finishing": _summary(600.0 / FINISHING_TARGET_X)})
    slow = finishing_target({"finishing": _summary(20.0)})
    assert fast[0][2] is True and fast[0][1].startswith("150x")
    assert slow[0][2] is False and slow[0][1].startswith("30x") and slow[0][3]
    assert finishing_target({}) == []


def test_the_section_shows_both_paths_side_by_side() -> None:
    text = finishing_section({"finishing": _summary(20.0)})
    assert "## Finishing" in text
    row = next(line for line in text.splitlines() if line.startswith("| chapter"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells == ["chapter", "60.0", "10", "20.0", "30", "3"]
    assert "1.60x" in text


def test_with_both_clocks_the_target_is_judged_on_cpu_time_over_the_cores() -> None:
    summary = _summary(20.0)
    new = dict.fromkeys(STAGES, 5.0) | {"chapter": 7.0, "m4b": 10.0}
    summary |= {
        "workers": 2,
        "load": {"before": [9.5, 9.0, 8.0], "after": [10.5, 9.0, 8.0]},
        "cpu_s": {"old": summary["old"], "previous": {"chapter": 13.0}, "new": new},
        "wall_s": {"old": summary["old"], "previous": {"chapter": 14.0}, "new": new | {
            "chapter": 30.0}},
    }  # fmt: skip
    line = finishing_target({"finishing": summary})[0]
    # 600 s of audio over 7 CPU seconds on 2 cores: 171x; the 20x wall comes with its load.
    assert line[2] is True and line[1].startswith("171x from CPU time on 2 cores")
    assert "20x wall at load 9.5-10.5" in line[1]
    text = finishing_section({"finishing": summary})
    assert "| new | chapter + m4b | 40.0 | 15 | 17.0 | 35 |" in text
    assert "[9.5, 9.0, 8.0] before" in text
