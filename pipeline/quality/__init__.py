"""The quality gate: measures of each answer's audio, rules, and the verdict (issue 17)."""

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
