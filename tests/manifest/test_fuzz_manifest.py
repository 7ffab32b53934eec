"""Issue 7.4: bad input at scale. Whatever the manifest holds, ``validate`` ends in exit 0 or
a clean exit 2 with ``FILE:LINE: message`` lines, never a traceback; and the chunker stays
linear on a line with nothing to cut at.

Three generators: structured YAML (the manifest's own keys with values of every type),
mutations of a valid YAML manifest (bytes inserted, deleted, replaced: the parser's error
paths), and CSV (known and unknown columns, raw cells). The default run is bounded to well
under a minute; ``slow`` runs many more examples.
"""

from __future__ import annotations

import contextlib
import io
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.chunking import split_text
from pipeline.cli import main
from pipeline.speech import MAX_INPUT_BYTES

CI_EXAMPLES = 150
SLOW_EXAMPLES = 3000
# FILE:LINE: message, or FILE: message for a problem with no line (a missing file).
PROBLEM_LINE = re.compile(r"^\S.*?(:\d+)?: \S.*$")
SUMMARY_LINE = re.compile(r"^tts-pipeline: (\d+ problem\(s\); nothing was sent|error: .+)$")

SPEECH_KEYS = (
    "voice_id", "response_format", "sample_rate", "speed", "emotion", "emotion_scale",
    "loudness_rate", "context_texts", "pause_ms",
)
CHAPTER_KEYS = ("id", "title", "text", "text_file", "lines", *SPEECH_KEYS)
TOP_KEYS = ("defaults", "chapters", "output", "run", "manifest")
OUTPUT_KEYS = ("dir", "format", "book", "subtitles", "loudness_lufs")
RUN_KEYS = ("backend", "base_url", "qps", "concurrency", "retries", "max_chunk_bytes")
# Files next to the manifest that text_file and manifest may name.
SIDE_FILES = {
    "ok.txt": b"First paragraph.\n\nSecond paragraph.\n",
    "latin1.txt": "caf\xe9 cr\xe8me".encode("latin-1"),
    "empty.txt": b"",
    "nul.txt": b"a\x00b\n",
    "bom.csv": b"\xef\xbb\xbfchapter,text,voice_id\nc1,hello,local-tone-1\n",
    "other.yaml": b"chapters:\n  - id: x\n    text: hi\n    voice_id: local-tone-1\n",
}
FILE_NAMES = (*SIDE_FILES, "missing.txt", "sub", "../escape.txt", "/etc/passwd", "a\x00b.txt", "")

VALID_YAML = """\
defaults:
  voice_id: local-tone-1
  response_format: wav
  sample_rate: 8000
  pause_ms: 300
output:
  format: mp3
  book: book.m4b
  subtitles: [srt]
run:
  qps: 5
  concurrency: 2
chapters:
  - id: ch01
    title: "第一回"
    text: |
      天下大势，分久必合。

      Second paragraph here.
  - id: ch02
    text_file: ok.txt
  - id: ch03
    lines:
      - text: "A line."
        emotion: happy
      - {text: "Another.", id: l2, speed: 1.5}
"""

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["mp3", "wav", "pcm", "ogg_opus", "happy", "local-tone-1", "ch01", "1e9",
                     "0x10", ".inf", "~", "book.m4b", "../evil.m4b", "a/b", "..", "srt",
                     "a\x00b.m4b", "....m4b", "out\x00dir", "\x1b[2J", "a\u2028b"]),
    st.sampled_from(FILE_NAMES),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(CHAPTER_KEYS), st.text(max_size=8)), inner,
                        max_size=4),
    ),
    max_leaves=12,
)


def _mapping(keys: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.one_of(st.sampled_from(keys), st.text(max_size=6)), values,
                           max_size=len(keys))


lines = st.lists(st.one_of(_mapping(("text", "id", *SPEECH_KEYS)), values), max_size=4)
file_names = st.one_of(st.sampled_from(FILE_NAMES), values)
chapter_ids = st.one_of(st.sampled_from(["ch01", "ch02", "CH01", "a.b", "report", "../x", "a/b",
                                         "/abs", ".", "..", "x" * 101, "c\x00"]), values)
_CHAPTER_VALUES = {"lines": lines, "text_file": file_names}
chapter = st.one_of(
    st.fixed_dictionaries({"id": chapter_ids}, optional={
        k: _CHAPTER_VALUES.get(k, values) for k in CHAPTER_KEYS if k != "id"
    }),
    values,
)
manifests = st.one_of(
    st.fixed_dictionaries({}, optional={
        "defaults": st.one_of(_mapping(SPEECH_KEYS), values),
        "chapters": st.one_of(st.lists(chapter, max_size=4), values),
        "output": st.one_of(_mapping(OUTPUT_KEYS), values),
        "run": st.one_of(_mapping(RUN_KEYS), values),
        "manifest": file_names,
    }),
    values,
)
edits = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=len(VALID_YAML.encode())),
        st.integers(min_value=0, max_value=8),
        st.one_of(
            st.binary(max_size=6),
            st.sampled_from([b":", b"- ", b"\n", b"\t", b"  ", b'"', b"'", b"{", b"[", b"&a",
                             b"*a", b"!!python/object:os.system", b"<<: *a", b"%YAML 1.1\n",
                             b"\x00", b"\xff", b"\xef\xbb\xbf", b"---\n", b"..."]),
        ),
    ),
    min_size=1,
    max_size=4,
)
CSV_COLUMNS = ("chapter", "text", "id", "title", *SPEECH_KEYS, "voice_ld", "")
csv_cells = st.one_of(st.text(max_size=12), st.sampled_from(["", "1.5", "abc", "wav", "8000",
                                                             "ch01", '"', "\n", ",", "\x00"]))
csv_tables = st.tuples(
    st.lists(st.sampled_from(CSV_COLUMNS), max_size=6),
    st.lists(st.lists(csv_cells, max_size=7), max_size=5),
    st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1"]),
)


@contextlib.contextmanager
def _workspace() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        folder = Path(tmp)
        for name, data in SIDE_FILES.items():
            (folder / name).write_bytes(data)
        (folder / "sub").mkdir()
        yield folder


def _validate(path: Path) -> None:
    """Run ``validate`` in-process: exit 0 or 2, and only clean lines on stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["validate", str(path)], environ={})
    text = err.getvalue()
    assert "Traceback" not in text, text
    if status == 0:
        assert text == "" and out.getvalue().startswith(f"{path}: ok: "), (text, out.getvalue())
        return
    assert status == 2, (status, text)
    problems = text.splitlines()
    assert problems, "exit 2 without a message"
    *body, last = problems
    assert SUMMARY_LINE.match(last), last
    for line in body:
        assert PROBLEM_LINE.match(line), f"not FILE:LINE: message: {line!r}"


def _dump(data: object) -> bytes:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode("utf-8")


def _mutate(data: bytes, changes: list[tuple[int, int, bytes]]) -> bytes:
    for at, drop, insert in changes:
        at = min(at, len(data))
        data = data[:at] + insert + data[at + drop:]
    return data


def _csv(table: tuple[list[str], list[list[str]], str]) -> bytes:
    header, rows, encoding = table
    text = "\n".join(",".join(row) for row in [header, *rows]) + "\n"
    return text.encode(encoding, errors="replace")


def _fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=examples == CI_EXAMPLES,  # CI: the same examples every run
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )


def _check_all(kind: str, data: bytes) -> None:
    with _workspace() as folder:
        path = folder / ("manifest.csv" if kind == "csv" else "manifest.yaml")
        path.write_bytes(data)
        _validate(path)


_GENERATORS = {
    "structured": manifests.map(_dump),
    "mutated": edits.map(lambda e: _mutate(VALID_YAML.encode(), e)),
    "csv": csv_tables.map(_csv),
}


def _make_test(kind: str, examples: int) -> Any:
    @_fuzz_settings(examples)
    @given(data=_GENERATORS[kind])
    def check(data: bytes) -> None:
        _check_all(kind, data)

    return check


@pytest.mark.parametrize("kind", sorted(_GENERATORS))
def test_fuzz_validate_never_tracebacks(kind: str) -> None:
    _make_test(kind, CI_EXAMPLES)()


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("kind", sorted(_GENERATORS))
def test_fuzz_validate_never_tracebacks_long(kind: str) -> None:
    _make_test(kind, SLOW_EXAMPLES)()


def test_the_valid_manifest_of_the_mutations_is_valid() -> None:
    # Else the mutation fuzzer would only ever start from an error.
    with _workspace() as folder:
        path = folder / "manifest.yaml"
        path.write_text(VALID_YAML, encoding="utf-8")
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            assert main(["validate", str(path)], environ={}) == 0, err.getvalue()


def test_a_1_mb_line_with_no_cut_point_is_chunked_in_linear_time() -> None:
    def timed(size: int) -> float:
        text = "x" * size
        started = time.perf_counter()
        chunks = split_text(text)
        elapsed = time.perf_counter() - started
        assert "".join(chunks) == text
        assert all(len(c.encode()) <= MAX_INPUT_BYTES for c in chunks)
        return elapsed

    timed(10_000)  # warm up the regex caches
    small = min(timed(125_000) for _ in range(2))
    large = min(timed(1_000_000) for _ in range(2))
    # 8x the input: linear is ~8x the time; quadratic would be ~64x. Generous for noise.
    assert large < 20 * small + 0.05, f"125 kB: {small:.3f} s, 1 MB: {large:.3f} s"
    assert large < 10.0
