"""``plan``'s text output: per chapter, the totals, what is left to send and bill."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.lookup import CacheLookup
    from pipeline.planning import Plan


def print_plan(plan: Plan, qps: float, found: CacheLookup) -> None:
    for cp in plan.chapters:
        chars = sum(c.characters for c in cp.chunks)
        title = f": {cp.chapter.title}" if cp.chapter.title else ""
        print(
            f"{cp.chapter.id}: {len(cp.chapter.lines)} lines, {len(cp.chunks)} chunks, "
            f"{chars} characters, {cp.response_format} {cp.sample_rate} Hz{title}"
        )
    requests = found.requests
    print(
        f"total: {len(plan.chapters)} chapters, {plan.lines} lines, {plan.chunk_count} chunks, "
        f"{plan.characters} characters, {plan.utf8_bytes} UTF-8 bytes"
    )
    print(
        f"to send: {requests} requests ({found.hits} chunks already in the cache"
        f"{f', {found.repeats} repeating an earlier chunk' if found.repeats else ''}), "
        f"{found.billable_characters} characters to bill; at least {requests / qps:.1f} s at "
        f"{qps:g} requests/s"
    )
    from pipeline.dubbing.fit import refit_bound  # only plan needs it

    refits, refit_characters = refit_bound(plan)
    if refits:
        print(
            f"fit speed: at most {refits} more requests ({refit_characters} characters) if "
            "every `fit: speed` line overflows its cue (worst case; not in the figures above)"
        )
