"""The C allocator's thresholds for a long run: freed memory is kept for reuse.

Every answer passes through arrays and buffers of a few hundred KB (its body, the quality
gate's samples and spectra), many of them in worker threads. glibc returns such memory to
the kernel as soon as it is freed (its thresholds adapt only up to the sizes it has seen), so
the next answer pays page faults and zeroed pages again: a measured 20 % of a run's CPU at
10,000 chunks. Raising both thresholds to the ceilings glibc's own adaptation may reach
(32 MB and 64 MB) keeps that memory in the process instead; a freed block larger than that
still goes back. Elsewhere (no glibc) nothing changes.
"""

from __future__ import annotations

import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 64 << 20


def keep_freed_memory() -> bool:
    """Set the thresholds (once per process is enough); False where that cannot be done."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes  # only here: it costs start-up time

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt answers 1 on success, 0 on failure.
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
