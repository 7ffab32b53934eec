"""Reading an input file the user named (a manifest, a job file, a ``text_file``): bounded.

A name in a manifest may point anywhere: at a FIFO (reading it waits forever), a device
(``/dev/zero`` never ends), a kernel file (``/proc/self/environ`` holds the environment, the
API token included) or a file of gigabytes. Only a regular file of at most
``MAX_INPUT_FILE_BYTES`` is read, with a bound on the read itself; everything else is a
one-line reason the caller puts after ``FILE:LINE:``. A symbolic link to a regular file is
fine: the file it names is what is checked.
"""

from __future__ import annotations

import functools
import os
import stat
from pathlib import Path

from pipeline.settings import MAX_INPUT_FILE_BYTES

_MIB = 1024 * 1024
# Kernel file systems: their files claim a size of 0 (or 4096) whatever they hold.
_PSEUDO_ROOTS = ("/proc", "/sys")


@functools.cache
def _pseudo_devices() -> frozenset[int]:
    devices = set()
    for root in _PSEUDO_ROOTS:
        try:
            devices.add(os.stat(root).st_dev)
        except OSError:
            continue
    return frozenset(devices)


def _kind_problem(info: os.stat_result) -> str | None:
    """Why a file with this ``stat`` is not one we read, or None."""
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else (
            "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket or other "
            "special file")
        return f"is {kind}, not a regular file: give a text file"
    if info.st_dev in _pseudo_devices():
        return "is a file of the kernel (/proc, /sys), not a text file: give a text file"
    if info.st_size > MAX_INPUT_FILE_BYTES:
        return (
            f"is {info.st_size / _MIB:.0f} MiB, more than the {MAX_INPUT_FILE_BYTES // _MIB} "
            "MiB an input file may have: split it into several files"
        )
    return None


def read_bounded(path: Path) -> bytes | str:
    """The bytes of the regular file ``path``, or why it is not read (a phrase)."""
    if "\x00" in str(path):
        return "a file name cannot hold a NUL character"  # open() would raise ValueError
    try:
        # Checked before opening: opening a device or a FIFO can itself wait or act.
        problem = _kind_problem(os.stat(path))
        if problem is not None:
            return problem
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return "no such file"
    except NotADirectoryError:
        return "no such file (a part of its path is a file, not a folder)"
    except OSError as e:
        return f"cannot read it: {e.strerror or e}"
    try:
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())  # the file opened: it may have been swapped meanwhile
            problem = _kind_problem(info)
            if problem is not None:
                return problem
            data = f.read(info.st_size + 1)
    except OSError as e:
        return f"cannot read it: {e.strerror or e}"
    if len(data) > info.st_size:
        return "grew while it was read (or is not a plain file): read it again when it is done"
    return data
