"""The spread margin of a run's limiter (``pipeline.limits``): a gap added to every interval
for the timing noise between our clock and the server's, learnt from isolated refusals.

Requests leave on schedule but reach the server's rate check after a delay that varies from
one request to the next (the network, both event loops, a busy machine). Against a server
that keeps no burst, two requests sent one interval apart arrive closer than that whenever the
first was delayed more than the second, and the second is refused although the rate was
right. Slowing the rate for a while after such a refusal (a dip) brings the refusals back as
soon as the dip ends, and two of them close together look like a limit (a 20 % cut and a
search). A margin tracks the noise instead: every isolated refusal at a rate the run trusts
widens the gap (``first`` of an interval, then double, up to ``cap``), and every
``clean_tokens`` tokens without a refusal narrow it by ``decay``. The refusal share settles
near one in ``clean_tokens``: the margin is just wide enough for the noise seen lately.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SpreadRules:
    """How the margin grows and shrinks, in intervals (1.0 is one whole interval)."""

    first: float = 0.01
    cap: float = 0.25
    clean_tokens: int = 200
    decay: float = 0.7


class SpreadMargin:
    """The learnt margin, as a share of the interval: each gap is ``1 + share`` intervals."""

    def __init__(self, rules: SpreadRules | None = None) -> None:
        self.rules = rules or SpreadRules()
        self.share = 0.0
        self.widened = 0  # refusals that widened the margin
        self._clean = 0  # tokens since the last refusal or narrowing
        self._widened_at: tuple[float, float] | None = None  # (when, share before) of a cluster

    def widen(self, now: float, window: float) -> bool:
        """An isolated refusal: widen the margin; False when it is already at its cap (the
        refusal is then more than noise, and the rate must answer for it)."""
        rules = self.rules
        if self.share >= rules.cap or rules.cap <= 0:
            return False
        if self._widened_at is None or now - self._widened_at[0] > window:
            self._widened_at = (now, self.share)  # the margin before this cluster
        self.share = min(rules.cap, max(rules.first, 1.5 * self.share))
        self.widened += 1
        self._clean = 0
        return True

    def refused(self) -> None:
        """A refusal the margin did not answer for: it is not a clean run either."""
        self._clean = 0

    def undo(self, now: float, window: float) -> None:
        """A limit: refusals within ``window`` before it were the rate's doing, not noise;
        the margin goes back to what it was before them."""
        widened = self._widened_at
        if widened is not None and now - widened[0] <= window:
            self.share = widened[1]
        self._widened_at = None
        self._clean = 0

    def issued(self) -> None:
        """One more token: after ``clean_tokens`` of them without a refusal, narrow."""
        self._clean += 1
        if self._clean < self.rules.clean_tokens or self.share == 0.0:
            return
        self._clean = 0
        self.share *= self.rules.decay
        if self.share < self.rules.first / 2:
            self.share = 0.0
