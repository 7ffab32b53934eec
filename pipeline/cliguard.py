"""The command line's guards: what comes from outside is checked where it enters, and what
goes to the terminal is made safe, so that every failure is one clear line and an exit code.

- ``checked_token``: the token from the environment, stripped (CI secrets end in a newline)
  and checked, never shown.
- ``check_chosen_base_url``: the base URL a run will use, checked with the client's own rules
  (a malformed IPv6 host or a bad port is a ConfigError, not a traceback).
- ``check_writable``: a file name the user gave for an output (``--junit``, ``merge-reports
  -o``, ``say -o``), checked before anything is sent or paid for.
- ``say``: print a line whose text may hold anything (server messages, file names): the token
  removed and control characters escaped.
- ``silence_stdout``: ``tts-pipeline voices --json | head`` ends quietly.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TextIO

from pipeline.errors import ConfigError, StorageError, UsageError
from pipeline.fileio import check_target
from pipeline.redact import Redactor, check_token, escape_controls

# Exit status of a command whose output was cut short by its reader (``| head``): the
# command did not finish, as Python's own documentation advises for this case.
BROKEN_PIPE_EXIT = 1


def checked_token(raw: str | None, variable: str) -> str | None:
    """The usable token (stripped), None when unset; UsageError (never showing it) if bad."""
    if raw is None or not raw.strip():
        return None
    try:
        return check_token(raw, f"${variable}")
    except ConfigError as e:
        raise UsageError(str(e)) from None


def redactor_for(raw: str | None) -> Redactor:
    """A redactor for the token as given (stripped: that is how it is sent)."""
    return Redactor((raw or "").strip())


def check_chosen_base_url(url: str, where: str, redactor: Redactor) -> None:
    """UsageError naming ``where`` (``--base-url``, ``$COZE_API_BASE``...) if ``url`` is not a
    usable http(s) URL by the client's rules."""
    from pipeline.coze.client import check_base_url

    try:
        check_base_url(url, redactor)
    except ConfigError as e:
        raise UsageError(f"{where}: {e}") from None


def check_writable(path: Path, option: str) -> None:
    """UsageError if ``path`` cannot become a file we write: a folder, a link, a device, or a
    parent that is a file or a folder we may not write to. Checked before anything is sent."""
    shown = say_text(str(path))
    try:
        check_target(path)
    except StorageError as e:
        raise UsageError(f"{option}: {say_text(str(e))}") from None
    parent = _existing_parent(path.parent)
    if parent is None:
        raise UsageError(f"{option} {shown}: its folder cannot be made (a file is in the way)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(
            f"{option} {shown}: cannot write in {say_text(str(parent))}: allow writing "
            "there or choose another folder"
        )


def _existing_parent(folder: Path) -> Path | None:
    """The nearest existing ancestor of ``folder`` (itself included), None if it is not a
    folder (a file where a folder belongs)."""
    current = folder if str(folder) else Path(".")
    while True:
        try:
            if current.is_dir():
                return current
            if current.exists() or current.is_symlink():
                return None
        except OSError:
            return None
        if current.parent == current:
            return None
        current = current.parent


def say_text(text: str, redactor: Redactor | None = None) -> str:
    """``text`` fit for a terminal: the token removed, control characters escaped."""
    return (redactor or Redactor()).clean(text)


def say(text: str, redactor: Redactor | None = None, *, file: TextIO | None = None) -> None:
    """Print one line (to stderr unless ``file``) made safe by :func:`say_text`."""
    print(say_text(text, redactor), file=sys.stderr if file is None else file)


def silence_stdout() -> int:
    """After a reader went away (``| head``): point stdout at /dev/null so that Python's own
    flush at exit raises nothing more; the exit status to use."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return BROKEN_PIPE_EXIT


def json_for_terminal(value: object) -> str:
    """``value`` as indented JSON (non-ASCII kept readable) whose control, line-separator and
    bidi characters are written as ``\\uXXXX`` escapes: the same data, safe on a terminal."""
    import json

    text = json.dumps(value, ensure_ascii=False, indent=2)
    if escape_controls(text, keep_newlines=True) == text:
        return text
    # Outside strings JSON has only structural newlines; inside, json.dumps escaped C0 already.
    return "".join(
        f"\\u{ord(c):04x}" if c != "\n" and escape_controls(c) != c else c for c in text
    )
