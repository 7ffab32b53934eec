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
"""

from pipeline.quality.config import OFF, QualityConfig, parse_quality
from pipeline.quality.gate import RULES, QualityGate, Verdict
from pipeline.quality.measures import Measures, decode_answer, measure
from pipeline.quality.units import TextUnits, text_units

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
