"""Every built-in default, once (filled in below by the merge of run settings)."""

from __future__ import annotations

DEFAULT_PAUSE_MS = 300
