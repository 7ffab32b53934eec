"""Admission of speech requests: the token bucket behind ``ServerConfig.qps``.

Taken on the server's event loop; reset from any thread (``LocalServer.reset``), hence the lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; starts full."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = self._burst
        self._stamp = clock()

    def take(self) -> float:
        """0.0 when a token was taken; otherwise the seconds until one will be there."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self._rate

    def reset(self) -> None:
        with self._lock:
            self._tokens = self._burst
            self._stamp = self._clock()
