"""Where each part lands in a chapter, counted in whole samples so that nothing drifts.

A lossless join cannot cut every part where its sound starts and ends: an mp3 part keeps its
encoder delay and padding, an Opus part its pre-skip and end trim, wherever it is not the
chapter's first or last. Those extra samples are counted here, and each pause is shortened by
what has been added so far (to the nearest whole frame or packet), so the chapter's length
stays the sum of the parts' own lengths plus the pauses, and each cue marks where a part's own
sound is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.audio.model import Cue, Part


def samples_to_ms(samples: int, rate: int) -> int:
    return (samples * 1000 + rate // 2) // rate


@dataclass
class Timeline:
    """Output position and cues of a chapter being joined, at ``rate`` samples per second."""

    rate: int
    position: int = 0
    ideal: int = 0
    cues: list[Cue] = field(default_factory=list)

    def add_part(
        self, part: Part, *, lead: int, content: int, tail: int, own: int | None = None
    ) -> None:
        """Count a part: ``lead`` samples before its sound, ``content`` and ``tail`` after.

        ``own`` is the length of the part heard alone when ``content`` holds more than that
        (the inner joins of a chained Ogg part).
        """
        start = self.position + lead
        end = start + content
        self.cues.append(
            Cue(
                samples_to_ms(start, self.rate),
                samples_to_ms(end, self.rate),
                part.text,
                part.line_id,
            )
        )
        self.position = end + tail
        self.ideal += content if own is None else own

    def pause_units(self, pause_ms: int, unit: int, *, trimmed_after: int = 0) -> int:
        """How many silent units of ``unit`` samples to put after a line, and count them.

        ``trimmed_after``: samples the decoder will drop after this pause (it is the last).
        """
        self.ideal += (pause_ms * self.rate + 500) // 1000
        need = self.ideal - self.position + trimmed_after
        count = max(0, (need + unit // 2) // unit)
        self.position += count * unit
        return count

    def trim_end(self, samples: int) -> None:
        """The container drops ``samples`` at the very end (Opus end trim, mp3 padding)."""
        self.position -= samples

    @property
    def duration_s(self) -> float:
        return self.position / self.rate
