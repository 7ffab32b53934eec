"""Readable subtitle cues: sentences and clauses, at most ~7 s and two lines, timed by pauses.

A chunk's cue (where its audio is in the chapter) is cut into its sentences. The pauses found
in the chunk's audio tell where the sentences fall: the n - 1 sentence ends are matched, in
order, to the pauses nearest to where the text's proportions put them (a chunk often pauses
at commas too, so there may be more pauses than sentence ends). A sentence then ends where
its pause starts and the next begins where it ends. Where fewer pauses were found than the
sentences need (fast speech, music under the voice, no pauses given), the chunk's time is
shared out in proportion to the sentences' characters instead.

A sentence too long for one cue (over two lines, or over 7 s) is cut at its clauses, and a
clause that does not fit two lines at its words, into the fewest groups that fit, timed the
same way from the pauses inside the sentence. Cues never cross a chunk's edges, so never a
pause between lines. A cue is over 7 s only when it is one clause that fits the screen but
is spoken slowly (or a single word longer than a cue can hold).
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.audio.cuetext import clauses, fits, sentences, words, wrap
from pipeline.audio.model import Cue
from pipeline.audio.pauses import Pause

MAX_CUE_MS = 7000

Span = tuple[str, int, int]  # text, start ms, end ms


def _weight(text: str) -> int:
    return max(1, sum(1 for ch in text if not ch.isspace()))


def _match(expected: Sequence[float], pauses: Sequence[Pause]) -> list[Pause]:
    """The pauses, in order, nearest to the expected boundaries (one each; len(pauses) >= k)."""
    k, m = len(expected), len(pauses)
    inf = float("inf")
    cost = [[inf] * (m + 1) for _ in range(k + 1)]
    cost[0] = [0.0] * (m + 1)
    for i in range(1, k + 1):
        for j in range(i, m + 1):
            take = cost[i - 1][j - 1] + abs(expected[i - 1] - pauses[j - 1].middle_ms)
            cost[i][j] = min(cost[i][j - 1], take)
    chosen: list[Pause] = []
    i, j = k, m
    while i > 0:
        if cost[i][j] == cost[i][j - 1] and j > i:
            j -= 1
        else:
            chosen.append(pauses[j - 1])
            i, j = i - 1, j - 1
    return chosen[::-1]


def timed(texts: Sequence[str], start: int, end: int, pauses: Sequence[Pause]) -> list[Span]:
    """Each text's time within ``start``-``end``: at the pauses if enough, else by characters."""
    if len(texts) == 1:
        return [(texts[0], start, end)]
    weights = [_weight(t) for t in texts]
    total = sum(weights)
    expected, running = [], 0
    for w in weights[:-1]:
        running += w
        expected.append(start + (end - start) * running / total)
    inside = [p for p in pauses if start < p.start_ms and p.end_ms < end]
    if len(inside) >= len(expected):
        bounds = [(p.start_ms, p.end_ms) for p in _match(expected, inside)]
    else:
        bounds = [(round(b), round(b)) for b in expected]
    starts = [start] + [b[1] for b in bounds]
    ends = [b[0] for b in bounds] + [end]
    return list(zip(texts, starts, ends, strict=True))


def _groups(text: str, start: int, end: int) -> list[str]:
    """``text`` cut into the fewest consecutive groups that fit a cue."""
    per_char = (end - start) / _weight(text)

    def ok(piece: str) -> bool:
        return fits(piece) and _weight(piece) * per_char <= MAX_CUE_MS

    pieces: list[str] = []
    for clause in clauses(text):
        # Words only where a clause cannot be shown whole: a slow clause stays one cue.
        pieces.extend([clause] if fits(clause) else words(clause))
    groups: list[str] = []
    for piece in pieces:
        if groups and ok(groups[-1] + piece):
            groups[-1] += piece
        else:
            groups.append(piece)
    return groups


def _display(text: str) -> str:
    lines = wrap(text)
    return "\n".join(lines) if lines else " ".join(text.split())


def part_cues(cue: Cue, pauses: Sequence[Pause]) -> list[Cue]:
    """One chunk's cue as readable cues; ``pauses`` in ms from the chunk's own start."""
    found = [Pause(cue.start_ms + p.start_ms, cue.start_ms + p.end_ms) for p in pauses]
    result: list[Cue] = []
    for text, start, end in timed(
        sentences(cue.text) or [cue.text], cue.start_ms, cue.end_ms, found
    ):
        if fits(text) and end - start <= MAX_CUE_MS:
            spans = [(text, start, end)]
        else:
            spans = timed(_groups(text, start, end), start, end, found)
        result.extend(Cue(s, e, _display(t), cue.line_id) for t, s, e in spans if t.strip())
    return result


def readable_cues(cues: Sequence[Cue], pauses: Sequence[Sequence[Pause]]) -> list[Cue]:
    """Every chunk's cue made readable; ``pauses[i]`` are chunk i's (may be empty)."""
    result: list[Cue] = []
    for cue, found in zip(cues, pauses, strict=True):
        result.extend(part_cues(cue, found))
    return result
