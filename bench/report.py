"""docs/benchmarks.md from the raw figures (docs/benchmarks.json): tables, targets, notes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.common import markdown_table
from bench.report_finishing import finishing_section, finishing_target

# Issue 18's targets.
KNOWN_TARGET = 0.97
KNOWN_429_SHARE = 0.01
FOUND_TARGET = 0.93
FOUND_429_SHARE = 0.03
PEER_TARGET = 10.0
RSS_TARGET_MB = 250.0


def render(results: dict[str, Any]) -> str:
    parts = [_header(results)]
    targets = _targets(results)
    if targets:
        parts.append("## Targets\n\n" + markdown_table(
            ["target", "measured", "met"], [(t, m, ok) for t, m, ok, _ in targets]
        ))  # fmt: skip
    for key, section in SECTIONS:
        if key in results:
            parts.append(section(results))
    notes = [note for *_, ok, note in targets if not ok and note]
    if notes:
        parts.append(
            "## Why the missed targets are missed\n\n" + "\n\n".join(notes) + "\n\n" + FIX_TEXT
        )
    return "\n\n".join(parts) + "\n"


def _header(results: dict[str, Any]) -> str:
    m = results["machine"]
    rows = [
        ("date", m["date"]),
        ("CPU", f"{m['cpu']}, {m['nproc']} cores (nproc)"),
        ("memory", f"{m['memory_gib']} GiB"),
        ("Python", m["python"]),
        ("OS", m["os"]),
        ("command", f"`make bench` = `.venv/bin/{results['command']}`"),
    ]
    return (
        "# Benchmarks\n\n"
        "Written by `make bench` (raw figures: [benchmarks.json](benchmarks.json)). Every "
        "comparison runs in one process tree, one after the other: the benchmark driver, a "
        "local Coze-compatible server in its own process (`python -m bench.server`: "
        "`pipeline.localserver` with the knobs of `tts-pipeline serve-local`, tone engine), "
        "and each client in its own process, so that the client's CPU time and peak RSS "
        "(`os.wait4` of that child) are its own.\n\n"
        + markdown_table(["", ""], rows)
    )


# ---------------------------------------------------------------- targets


Target = tuple[str, str, bool, str]


def _targets(results: dict[str, Any]) -> list[Target]:
    targets: list[Target] = []
    for run in results.get("throughput", {}).get("runs", []):
        limit = run["limit"]
        if run["label"] == "known":
            ok = run["ratio"] >= KNOWN_TARGET and run["delivered"] == run["chunks"]
            ok = ok and run["share_429"] < KNOWN_429_SHARE
            targets.append((
                f"R = {limit:g}, limit known: >= {KNOWN_TARGET} of R, "
                f"< {100 * KNOWN_429_SHARE:g} % 429s",
                f"{run['ratio']:.3f} ({run['server']['rate_limited']} x 429)",
                ok, _pacing_note(run),
            ))  # fmt: skip
        else:
            share = run["share_429"]
            ok = run["ratio"] >= FOUND_TARGET and share < FOUND_429_SHARE
            ok = ok and run["delivered"] == run["chunks"]
            targets.append((
                f"R = {limit:g}, --qps 2R: >= {FOUND_TARGET} of R, "
                f"< {100 * FOUND_429_SHARE:g} % 429s",
                f"{run['ratio']:.3f}, {100 * share:.1f} % 429 ({run['server']['rate_limited']})",
                ok, _search_note(run),
            ))  # fmt: skip
    peers = results.get("peers")
    if peers:
        ratio = peers["ratio_vs_sequential"]
        targets.append((
            f"R = {peers['limit']:g}: >= {PEER_TARGET:g}x the sequential SDK loop",
            f"{ratio:.1f}x", ratio >= PEER_TARGET, _peer_note(peers),
        ))  # fmt: skip
        pipe, gather = peers["pipeline"], peers["gather"]
        ok = pipe["delivered"] == pipe["chunks"] and gather["lost"] > 0
        targets.append((
            "100 % of lines delivered where the naive gather loses some",
            f"pipeline {pipe['delivered']}/{pipe['chunks']}; gather "
            f"{gather['delivered']}/{gather['lines']}", ok, "",
        ))  # fmt: skip
    book = results.get("scale", {}).get("book")
    if book:
        ok = book["peak_rss_mb"] < RSS_TARGET_MB and book["status"] == "ok"
        targets.append((
            f"peak RSS < {RSS_TARGET_MB:g} MB, {book['characters']:,}-character book",
            f"{book['peak_rss_mb']:.0f} MB", ok, "",
        ))  # fmt: skip
    targets += finishing_target(results)
    return targets


def _pacing_note(run: dict[str, Any]) -> str:
    e = run["evidence"]
    gaps, silence = e["gap_before_refusal_ms"], e["silence_after_refusal_s"]
    parts = [f"**R = {run['limit']:g}, limit known ({run['ratio']:.3f}).**"]
    if gaps:
        parts.append(
            f"Replaying the server's bucket (R/s, burst 1) on its arrival timestamps finds "
            f"{e['refused']} refusal(s), the first {e['first_refusal_s']} s in; each came "
            f"{gaps['min']:.1f} to {gaps['max']:.1f} ms after the arrival before it, against "
            f"an interval of {e['interval_ms']} ms: the client paces at R and a little timing "
            "noise between its limiter and the server's clock makes one request early. After "
            "a refusal the next arrival came "
            f"{silence['median'] if silence else 0:.2f} s later (median), and the rate "
            "restarts lowered and searches its way back."
        )
    before, after = e["pacing_gap_before_first_refusal_ms"], e["pacing_gap_after_last_refusal_ms"]
    if before and after and gaps:
        parts.append(
            f"Pacing gaps (median): {before['median']:.1f} ms before the first refusal, "
            f"{after['median']:.1f} ms after the last, against {e['interval_ms']} ms: after "
            f"its refusals the run settled at about {e['interval_ms'] / after['median']:.2f} "
            "of R for the rest of the job, and the loss is there."
        )
    if before:
        parts.append(
            f"At the ceiling the limiter hands out {e['interval_ms'] / before['median']:.3f} "
            f"of R under load (median gap), {run.get('limiter_alone', 0):.3f} on an idle event "
            "loop: with burst 1 a late token is never made up, so event-loop lateness (client "
            "and server share 2 cores) is lost rate."
        )
    return " ".join(parts)


def _search_note(run: dict[str, Any]) -> str:
    e = run["evidence"]
    silence = e["silence_after_refusal_s"]
    return (
        f"**R = {run['limit']:g}, --qps {run['qps']:g} ({run['ratio']:.3f}, "
        f"{100 * run['share_429']:.1f} % 429).** {e['refused']} refusal(s), the first "
        f"{e['first_refusal_s']} s in; after each, the next arrival came "
        f"{silence['median'] if silence else 0:.2f} s later (median): the run-wide "
        "Retry-After pause. The rest is the time the rate spends under R while it searches "
        "(see the plot)."
    )


def _peer_note(peers: dict[str, Any]) -> str:
    seq = peers["sequential"]
    bound = peers["limit"] / seq["rate"]
    return (
        f"**{peers['ratio_vs_sequential']:.1f}x the sequential loop.** The sequential loop "
        f"delivers {seq['rate']:.2f} lines/s (one request at a time, each the server's latency "
        f"of 300 ms + 0.5 ms/byte on 100-300-byte lines, mean "
        f"{1 / seq['rate']:.2f} s with the SDK's overhead). No client can exceed R = "
        f"{peers['limit']:g}/s, so at R = {peers['limit']:g} the best possible ratio on this "
        f"job is {bound:.1f}x: 10x needs a mean latency of at least 0.5 s (lines of 400+ bytes, "
        "or a slower server). The fair figure is the share of that bound reached: "
        f"{peers['ratio_vs_sequential'] / bound:.0%}."
    )


# ---------------------------------------------------------------- sections


def _throughput(results: dict[str, Any]) -> str:
    t = results["throughput"]
    s = t["server"]
    rows = []
    for r in t["runs"]:
        rows.append((
            f"{r['limit']:g}", "known" if r["label"] == "known" else "2x (finds it)",
            r["qps"], r["concurrency"], r["server"]["rate"], r["ratio"],
            r["server"]["rate_limited"], f"{100 * r['share_429']:.1f} %",
            r["end_to_end_rate"], r["wall_s"], r["client_cpu_s"],
            f"{r['delivered']}/{r['chunks']}",
        ))  # fmt: skip
    return (
        "## 1. Throughput against the rate limit\n\n"
        f"One job of {t['chunks']:,} lines (100-300 UTF-8 bytes each, zh/en/ja corpus, 10 "
        f"chapters; {t['response_format']}: no encoding cost on the server). The server: tone "
        f"engine, at most R requests/s (token bucket, burst {s['burst']}; over it: HTTP 429, "
        f"code 4009, Retry-After), latency {s['latency_ms']:g} ms + "
        f"{s['latency_per_byte_ms']:g} ms/byte, +-{100 * s['jitter']:g} % jitter. The pipeline "
        "runs as users run it: `python -m pipeline run JOB --base-url URL --qps X "
        "--concurrency N --progress jsonl` with `COZE_API_TOKEN` set. Concurrency covers "
        "R x the slowest latency (0.585 s), rounded up to a power of two, at least 8. "
        "**answers/s** is the server's count of audio answers from its first to its last "
        "arrival; **/ R** is the figure; **end to end** is lines over the client process's "
        "whole life (start-up, cache, chapter assembly included).\n\n"
        + markdown_table(
            ["R", "run", "--qps", "concurrency", "answers/s", "/ R", "429s", "429 share",
             "end to end lines/s", "wall s", "client CPU s", "delivered"],
            rows,
        )  # fmt: skip
    )


def _peers(results: dict[str, Any]) -> str:
    p = results["peers"]
    pipe, seq, gat = p["pipeline"], p["sequential"], p["gather"]
    rows = [
        ("pipeline (--qps 20)", pipe["concurrency"], f"{pipe['delivered']}/{pipe['chunks']}",
         pipe["server"]["rate_limited"], pipe["end_to_end_rate"], pipe["server"]["rate"],
         pipe["client_cpu_s"]),
        ("cozepy, sequential loop (README)", 1, f"{seq['delivered']}/{seq['lines']}",
         seq["server"]["rate_limited"], seq["rate"], seq["server"]["rate"], seq["client_cpu_s"]),
        ("AsyncCoze + Semaphore + gather", gat["concurrency"],
         f"{gat['delivered']}/{gat['lines']}", gat["server"]["rate_limited"], gat["rate"],
         gat["server"]["rate"], gat["client_cpu_s"]),
    ]  # fmt: skip
    return (
        f"## 2. Against what users would otherwise write (R = {p['limit']:g})\n\n"
        "Same server process, same job, right after section 1's runs at this R. The "
        "sequential loop is cozepy 0.20 as its README shows it (`Coze(...).audio.speech.create"
        "(...)`, `write_to_file`), run on the job's first "
        f"{seq['lines']} lines only (at ~0.45 s a request the whole job would take ~7 "
        "minutes): its rate is the figure. The gather is `AsyncCoze` under an "
        "`asyncio.Semaphore` with `asyncio.gather(..., return_exceptions=True)`, no limiter, "
        "no retry, over the whole job. **lines/s** counts delivered lines over the client's "
        "time; **server answers/s** is the server's view.\n\n"
        + markdown_table(
            ["client", "concurrency", "delivered", "429s", "lines/s", "server answers/s",
             "client CPU s"],
            rows,
        )  # fmt: skip
        + f"\n\nPipeline / sequential loop: **{p['ratio_vs_sequential']:.1f}x** (server "
        f"answers/s). Against the naive gather the figure is lines, not speed: the gather "
        f"ends fast because the server refuses most of it at once; it delivered "
        f"{gat['delivered']} of {gat['lines']} lines "
        f"({100 * gat['delivered'] / gat['lines']:.1f} %; lost: {_codes(gat['lost_by_code'])}), "
        f"the pipeline {pipe['delivered']} of {pipe['chunks']} "
        f"({100 * pipe['delivered'] / pipe['chunks']:.0f} %)."
    )


def _codes(by_code: dict[str, int]) -> str:
    return ", ".join(f"{n} x code {c}" for c, n in by_code.items()) or "none"


def _scale(results: dict[str, Any]) -> str:
    s = results["scale"]
    cpu, book = s["cpu"], s["book"]
    chunker = markdown_table(
        ["language", "MB", "chunks", "MB/s"],
        [(c["language"], c["mb"], c["chunks"], c["mb_per_s"]) for c in s["chunker"]],
    )
    join = markdown_table(
        ["format", "parts (10 s)", "audio h", "MB in", "seconds", "MB/s", "x real time"],
        [
            (j["format"], j["parts"], j["audio_hours"], j["mb"], j["seconds"], j["mb_per_s"],
             j["audio_x_realtime"])
            for j in s["join"]
        ],
    )  # fmt: skip
    return (
        "## 3. Cost of scale\n\n"
        f"**Client CPU**: {cpu['cpu_s_per_1000']:.2f} s per 1,000 chunks "
        f"({cpu['client_cpu_s']:.1f} s for {cpu['chunks']:,} chunks of 100-300 bytes, wav "
        "16 kHz; server: tone engine, no latency, no limit; `--qps 10000 --concurrency 16`; "
        f"wall {cpu['wall_s']:.0f} s, status {cpu['status']}). This is everything the client "
        "process does: start-up, planning, requests, audio checks, cache writes with fsync, "
        "chapter assembly.\n\n"
        f"**Peak RSS**: {book['peak_rss_mb']:.0f} MB for a book of {book['characters']:,} "
        f"characters (Chinese corpus, {book['chapters']} chapter files, {book['chunks']:,} "
        f"chunks, {book['audio_hours']} h of audio, wav 8 kHz), end to end against the server "
        f"process (no latency, no limit): status {book['status']}, {book['wall_s']:.0f} s, "
        f"client CPU {book['client_cpu_s']:.0f} s.\n\n"
        "**Chunker** (`split_text`, cap 1,024 bytes, the corpus lines repeated to ~2 MB per "
        "language, best of 3):\n\n" + chunker + "\n\n"
        "**Join** (`assemble_chapter` of 10-s parts, 24 kHz mono, with an .srt; the part files "
        "cycle through six tones; MB of parts read per second):\n\n" + join
    )


def _plot(results: dict[str, Any]) -> str:
    p = results["plot"]
    return (
        "## 4. A run with 429s\n\n"
        f"The pipeline configured at twice the server's limit ({p['run']}): arrivals per "
        "0.5 s (top), requests in flight sampled every 20 ms in the server process (bottom), "
        "429s marked in red: the slow-down after each refusal, the pause, the recovery.\n\n"
        f"![request rate and requests in flight over time]({p['file']})"
    )


SECTIONS: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
    ("throughput", _throughput),
    ("peers", _peers),
    ("scale", _scale),
    ("plot", _plot),
    ("finishing", finishing_section),
)

FIX_TEXT = """### What was fixed, and what is left

The first full run (limits.py with plain multiplicative decrease by 0.5, a run-wide pause for
the whole Retry-After, a search that stopped 10 % under a refused rate) measured 0.84 / 0.80 /
0.68 of R with the limit known and 0.87 / 0.78 / 0.65 at twice the limit (R = 5 / 20 / 50).
Side by side on one server (R = 20, 400 lines, concurrency 16), changing only the
`RateLimit`:

| `RateLimit(qps, ...)` | limit known: / R | 429s | --qps 2R: / R | 429s |
|---|---:|---:|---:|---:|
| then: pause for Retry-After, decrease 0.5, headroom 0.1, settle 2 s | 0.731 | 2 | 0.704 | 3 |
| `max_pause_s=0` | 0.771 | 2 | 0.891 | 3 |
| `max_pause_s=0, headroom=0.03, settle_s=1.0` | 0.854 | 2 | 0.934 | 5 |
| `max_pause_s=0, headroom=0.03, settle_s=1.0, decrease=0.8` | 0.918 | 2 | 0.938 | 5 |

Applied (the figures above this section are after it): the run pauses only for the certain
part of Retry-After (whole seconds rounded up: N means a wait in (N-1, N]; the refused
request itself still waits all N through the runner's retry), and the defaults are now
`decrease=0.8`, `headroom=0.03`, `settle_s=1.0`.

What is left is the server model. Its bucket admits no burst: two requests closer than 1/R
are refused. The client paces at exactly R, so a millisecond of event-loop lateness on this
shared 2-core box (client and server together) makes one request early and draws a 429
(every refusal above came 0.1 to 4 ms early). The limiter cannot tell that noise from a real
limit: it steps down and searches back, and each noise refusal near the top of the search
restarts it a little lower, so the run spends much of a one-minute job between 0.9 and 0.97
of R. Against a server that counts requests per second with any burst at all (what gateways
usually do), that noise is not refused: `bench/runner_bench.py --burst 2` measures it side by
side (see the closing note of issue 4). Against a burst-1 server the only cures are pacing
deliberately under R (a user can pass `--qps` a few percent under the limit) or less work on
the client's event loop between tokens.
"""
