"""The allocator's thresholds: a freed answer-sized buffer is reused, not faulted in again."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipeline.malloc import keep_freed_memory

# In a worker thread (as the quality gate's numpy work is), allocates, touches and frees
# buffers the size of an answer's arrays 200 times; prints the page faults that took.
_CHURN = """
import resource, sys, threading
from pipeline.malloc import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def churn():
    for n in range(200):
        a, b = bytearray(450_000), bytearray(900_000 + 4096 * (n % 7))
        a[::4096] = b"x" * len(a[::4096])
        b[::4096] = b"x" * len(b[::4096])
        del a, b
worker = threading.Thread(target=churn)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
worker.start()
worker.join()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _CHURN, mode], capture_output=True, text=True, check=True
    ).stdout
    return int(out)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_buffers_are_reused_instead_of_faulted_in_again() -> None:
    default, kept = _faults("default"), _faults("keep")
    assert default > 1000  # pages faulted in again and again
    assert kept < default / 3


def test_it_answers_whether_it_could() -> None:
    assert keep_freed_memory() is sys.platform.startswith("linux")
