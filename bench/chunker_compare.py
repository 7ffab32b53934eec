"""Compare the chunker's own sentence rules with pysbd and sentencex on real texts
(the project's own, or the external corpus that ``$TTS_CORPUS_DIR`` names).

Each contender turns a paragraph into chunks of at most ``--cap`` UTF-8 bytes:

- ``ours``: ``pipeline.chunking.split_text`` as it is (its regex rules, balanced packing);
- ``pysbd`` / ``sentencex``: that library's sentences, packed whole and greedily up to the
  cap; a sentence over the cap goes to ``split_text`` (so only the sentence level differs).

Every cut is judged by one independent rule set (below) and counted: at a sentence end,
after an abbreviation, inside a number, before a closing quote, inside a Latin word. Speed
is MB/s of UTF-8 text through the whole contender, best of ``--repeat`` runs over the
corpus of that language. ``--samples N`` prints N random cut contexts per contender and
language, to read.

    .venv/bin/pip install pysbd sentencex   # bench-only
    .venv/bin/python -m bench.chunker_compare [--cap 1024 --cap 200] [--samples 20]
    .venv/bin/python -m bench.chunker_compare --throughput 5   # split_text MB/s on 5 MB
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import regex

from bench.common import corpus_paragraphs
from pipeline.chunking import split_text

LANGUAGES = ("zh", "en", "ja")

_CLOSERS = "」』”’）)\"'_】》〉"
# The judge: a chunk ends a sentence when it ends with a stop and its closing marks and the
# next chunk does not go on in lower case; abbreviations and single initials never do.
_ENDS_WITH_STOP = regex.compile(rf"[。！？.!?…][{regex.escape(_CLOSERS)}]*$")
_ABBREVIATION = regex.compile(
    r"(?:^|[^\p{L}])(?:Mr|Mrs|Ms|Dr|St|Prof|Capt|Col|Gen|Lt|Rev|etc|e\.g|i\.e|U\.S|\p{L})\.$"
)
_SENTENCE_INSIDE = regex.compile(
    rf"(?:[。！？]|(?<!(?:^|\W)(?:Mr|Mrs|Ms|Dr|St|\p{{L}}))[.!?…]"
    rf"(?=[{regex.escape(_CLOSERS)}]*\s+[^\s\p{{Ll}}(]))"
)

Splitter = Callable[[str, int], list[str]]


@dataclass
class Tally:
    paragraphs: int = 0
    chunks: int = 0
    cuts: int = 0
    could_end: int = 0  # cuts whose left chunk holds a sentence end somewhere
    sentence_end: int = 0  # ... of those, cuts that are at one
    after_abbreviation: int = 0
    in_number: int = 0
    before_close: int = 0
    mid_word: int = 0
    seconds: float = 0.0
    megabytes: float = 0.0
    samples: list[str] = field(default_factory=list)


def pack_sentences(paragraph: str, sentences: Iterable[str], cap: int) -> list[str]:
    """Whole sentences, greedily, up to ``cap`` bytes; an oversized one through split_text."""
    bounds = [0]
    for sentence in sentences:
        piece = sentence.strip()
        found = paragraph.find(piece, bounds[-1]) if piece else -1
        if found >= 0:  # a library that rewrote the text: cut where it can still be found
            bounds.append(found + len(piece))
    bounds.append(len(paragraph))
    chunks: list[str] = []
    start = end = 0  # the chunk being filled is paragraph[start:end]
    for left, right in zip(bounds, bounds[1:], strict=False):
        if right <= left:
            continue
        if len(paragraph[start:right].strip().encode()) <= cap:
            end = right
            continue
        if end > start:
            chunks.append(paragraph[start:end].strip())
        sentence = paragraph[left:right]
        if len(sentence.strip().encode()) <= cap:
            start, end = left, right
        else:
            chunks.extend(split_text(sentence, cap))
            start = end = right
    if paragraph[start:end].strip():
        chunks.append(paragraph[start:end].strip())
    return chunks


def make_pysbd(language: str) -> Splitter:
    import pysbd

    segmenter = pysbd.Segmenter(language=language, clean=False)
    return lambda text, cap: pack_sentences(text, segmenter.segment(text), cap)


def make_sentencex(language: str) -> Splitter:
    import sentencex

    return lambda text, cap: pack_sentences(text, sentencex.segment(language, text), cap)


def make_ours(language: str) -> Splitter:
    return split_text


CONTENDERS: dict[str, Callable[[str], Splitter]] = {
    "ours": make_ours,
    "pysbd": make_pysbd,
    "sentencex": make_sentencex,
}


def judge(paragraph: str, chunks: list[str], tally: Tally, rng: random.Random) -> None:
    tally.paragraphs += 1
    tally.chunks += len(chunks)
    pos = 0
    spans = []
    for chunk in chunks:
        start = paragraph.index(chunk, pos)
        spans.append((start, start + len(chunk)))
        pos = start + len(chunk)
    for (_, left_end), (right_start, _), left, right in zip(
        spans, spans[1:], chunks, chunks[1:], strict=False
    ):
        tally.cuts += 1
        glued = left_end == right_start  # no whitespace at the cut
        at_end = bool(_ENDS_WITH_STOP.search(left)) and not right[:1].islower()
        at_end = at_end and not _ABBREVIATION.search(left)
        if at_end or _SENTENCE_INSIDE.search(left + " X"):
            tally.could_end += 1
            tally.sentence_end += at_end
        tally.after_abbreviation += bool(_ABBREVIATION.search(left))
        tally.in_number += glued and (
            (left[-1].isdigit() and (right[0].isdigit() or right[0] in ".,"))
            or (left[-1] in ".," and right[0].isdigit())
        )
        tally.before_close += right[0] in _CLOSERS
        tally.mid_word += glued and left[-1].isascii() and left[-1].isalpha() and right[0].isalpha()
        if len(tally.samples) < 10_000 and rng.random() < 0.5:
            tally.samples.append(f"…{left[-28:]} ‖ {right[:28]}…")


def run(cap: int, repeat: int, seed: int) -> dict[tuple[str, str], Tally]:
    results: dict[tuple[str, str], Tally] = {}
    for language in LANGUAGES:
        texts = corpus_paragraphs(language)
        size = sum(len(t.encode()) for t in texts) / 1e6
        for name, make in CONTENDERS.items():
            splitter = make(language)
            tally = Tally(megabytes=size)
            rng = random.Random(seed)
            outputs = [splitter(t, cap) for t in texts]
            for text, chunks in zip(texts, outputs, strict=True):
                judge(text, chunks, tally, rng)
            best = float("inf")
            for _ in range(repeat):
                started = time.perf_counter()
                for text in texts:
                    splitter(text, cap)
                best = min(best, time.perf_counter() - started)
            tally.seconds = best
            results[(language, name)] = tally
    return results


def table(cap: int, results: dict[tuple[str, str], Tally]) -> str:
    rows = [
        f"| lang | splitter | chunks | cuts | sentence end (where possible) | after abbr. "
        f"| in number | before closing quote | mid-word | MB/s (cap {cap}) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (language, name), t in results.items():
        ratio = f"{100 * t.sentence_end / t.could_end:.1f}%" if t.could_end else "n/a"
        rows.append(
            f"| {language} | {name} | {t.chunks} | {t.cuts} | {ratio} ({t.sentence_end}/"
            f"{t.could_end}) | {t.after_abbreviation} | {t.in_number} | {t.before_close} "
            f"| {t.mid_word} | {t.megabytes / t.seconds:.2f} |"
        )
    return "\n".join(rows)


def throughput(megabytes: float) -> str:
    """split_text alone, MB/s, on each language's paragraphs repeated to ``megabytes``: as
    separate lines (the normal case) and glued into one line (the packer's worst case)."""
    rows = [
        "| lang | MB | lines MB/s | chunks | one line MB/s | chunks |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for language in LANGUAGES:
        texts = corpus_paragraphs(language)
        size = sum(len(t.encode()) for t in texts)
        texts = texts * max(1, round(megabytes * 1e6 / size))
        total = sum(len(t.encode()) for t in texts) / 1e6
        started = time.perf_counter()
        chunks = sum(len(split_text(t)) for t in texts)
        lines_rate = total / (time.perf_counter() - started)
        glued = (" " if language == "en" else "").join(texts)
        started = time.perf_counter()
        one = len(split_text(glued))
        glued_rate = len(glued.encode()) / 1e6 / (time.perf_counter() - started)
        rows.append(
            f"| {language} | {total:.1f} | {lines_rate:.1f} | {chunks} | {glued_rate:.1f} | {one} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cap", type=int, action="append", help="chunk cap in bytes")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs; the best counts")
    parser.add_argument("--samples", type=int, default=0, help="cut contexts to print")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--throughput", type=float, metavar="MB", help="only time split_text on MB of text"
    )
    args = parser.parse_args()
    if args.throughput:
        print(throughput(args.throughput))
        return
    for cap in args.cap or [1024, 200]:
        results = run(cap, args.repeat, args.seed)
        print(f"\n### cap = {cap} bytes\n")
        print(table(cap, results))
        if args.samples:
            rng = random.Random(args.seed)
            for (language, name), tally in results.items():
                print(f"\n#### {language} / {name}: {args.samples} cut contexts")
                picked = rng.sample(tally.samples, min(args.samples, len(tally.samples)))
                for line in picked:
                    print(f"    {line}")


if __name__ == "__main__":
    main()
