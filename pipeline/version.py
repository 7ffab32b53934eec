"""The package's version, as pyproject.toml gives it (a test keeps the two equal).

A constant, because ``importlib.metadata`` costs tens of milliseconds to import and to search
``sys.path``, and the run path needs the version before its first request (the User-Agent).
"""

from __future__ import annotations

VERSION = "0.1.0"
