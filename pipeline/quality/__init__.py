"""The quality gate: measures of each answer's audio, rules, and the verdict (issue 17).

How the runner uses it (one ``QualityGate(config)`` per run, ``config`` from
``parse_quality(job's quality: value, file, line)``; nothing when ``config.enabled`` is
False):

1. An answer that passed ``check_audio``: ``samples, rate = decode_answer(data, fmt, rate)``
   (for long answers in a thread), then ``verdict = gate.assess(chunk text, voice_id,
   speed or 1.0, chapter id, samples, rate)``.
2. ``verdict.ok``: cache it as good, then ``late = gate.accept(text, voice, speed, chapter,
   verdict, ref=chunk key)``; each ref in ``late`` is an earlier chunk accepted during the
   warm-up that the learnt references now find bad: drop its cache entry and request it
   again as in step 3.
3. Not ok: do not cache it as good; request once more, up to ``config.retries`` times
   (counted, billed and budgeted like any request), keep the answer whose verdict
   ``better_than`` the others, stop early at an ok one (and ``accept`` it). If none is ok,
   keep the best, ``accept`` nothing, and flag the chunk: chapter, line id, file line,
   ``verdict.rules`` and ``verdict.to_json()`` (measures) into report.json, the summary,
   JUnit and ``--progress jsonl``; with ``config.strict`` the chapter fails.

Names are imported on first use (module ``__getattr__``): the config is light, while the
gate and the measures load numpy and PyAV, which a run needs only after its first answer,
never on the way to its first request (issue 18).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.lazy import lazy_attributes

if TYPE_CHECKING:
    from pipeline.quality.config import OFF, QualityConfig, parse_quality
    from pipeline.quality.gate import RULES, QualityGate, Verdict
    from pipeline.quality.measures import Measures, decode_answer, measure
    from pipeline.quality.units import TextUnits, text_units

_CONFIG = "pipeline.quality.config"
_GATE = "pipeline.quality.gate"
_MEASURES = "pipeline.quality.measures"
_UNITS = "pipeline.quality.units"
_WHERE = {
    "OFF": _CONFIG,
    "QualityConfig": _CONFIG,
    "parse_quality": _CONFIG,
    "RULES": _GATE,
    "QualityGate": _GATE,
    "Verdict": _GATE,
    "Measures": _MEASURES,
    "decode_answer": _MEASURES,
    "measure": _MEASURES,
    "TextUnits": _UNITS,
    "text_units": _UNITS,
}


__getattr__ = lazy_attributes(__name__, _WHERE, globals())


__all__ = [
    "OFF",
    "RULES",
    "Measures",
    "QualityConfig",
    "QualityGate",
    "TextUnits",
    "Verdict",
    "decode_answer",
    "measure",
    "parse_quality",
    "text_units",
]
