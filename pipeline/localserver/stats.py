"""What the local server saw: counts that tests assert on (billing, duplicates, pacing).

The server's event loop writes; tests read from other threads (``serve_in_thread``), so every
access goes through one lock and readers get copies.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any


def body_key(body: Mapping[str, Any]) -> str:
    """sha256 of a speech request body as canonical JSON: the key of ``ServerStats.by_input``.

    Two bodies with the same fields and values give the same key, whatever their key order.
    """
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ServerStats:
    """Counters of one server since start (or the last reset).

    ``requests``: every ``POST /v1/audio/speech``, refused ones included. ``audio_answers`` and
    ``billed_characters`` (``len(input)``): answers with audio only; faults and rate limits
    are not billed. ``by_input``: ``body_key(body)`` -> number of audio answers for it.
    ``arrivals``: ``time.monotonic()`` of every speech POST. ``max_in_flight``: the most speech
    requests handled at once. ``rate_limited``: HTTP 429 answers, injected ones included.
    ``faults``: injected faults by kind (a queued Coze code counts as ``code:<N>``).
    ``in_flight_inputs``: ``body_key`` of every valid speech body being answered now, from
    the body's parsing until its audio is written (a live gauge, like ``in_flight``).
    ``answered_at``: ``body_key`` -> ``time.monotonic()`` of its latest audio answer. With
    these two a crash test can tell which billed answers were in flight when a client died.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0
        self._in_flight_inputs: Counter[str] = Counter()
        self._reset_unlocked()

    def _reset_unlocked(self) -> None:
        # in_flight is a live gauge: requests still being answered must still leave().
        self._requests = 0
        self._audio_answers = 0
        self._billed_characters = 0
        self._by_input: Counter[str] = Counter()
        self._arrivals: list[float] = []
        self._max_in_flight = self._in_flight
        self._rate_limited = 0
        self._faults: Counter[str] = Counter()
        self._answered_at: dict[str, float] = {}

    def reset(self) -> None:
        with self._lock:
            self._reset_unlocked()

    # -- writers (the server) ------------------------------------------------------------

    def record_arrival(self, when: float) -> None:
        with self._lock:
            self._requests += 1
            self._arrivals.append(when)

    def enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def enter_input(self, key: str) -> None:
        with self._lock:
            self._in_flight_inputs[key] += 1

    def leave_input(self, key: str) -> None:
        with self._lock:
            self._in_flight_inputs[key] -= 1
            if self._in_flight_inputs[key] <= 0:
                del self._in_flight_inputs[key]

    def record_audio(self, body: Mapping[str, Any], characters: int, when: float) -> None:
        key = body_key(body)
        with self._lock:
            self._audio_answers += 1
            self._billed_characters += characters
            self._by_input[key] += 1
            self._answered_at[key] = when

    def record_rate_limited(self) -> None:
        with self._lock:
            self._rate_limited += 1

    def record_fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    # -- readers (tests, admin route) ----------------------------------------------------

    @property
    def requests(self) -> int:
        with self._lock:
            return self._requests

    @property
    def audio_answers(self) -> int:
        with self._lock:
            return self._audio_answers

    @property
    def billed_characters(self) -> int:
        with self._lock:
            return self._billed_characters

    @property
    def by_input(self) -> Counter[str]:
        with self._lock:
            return Counter(self._by_input)

    @property
    def arrivals(self) -> tuple[float, ...]:
        with self._lock:
            return tuple(self._arrivals)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def in_flight_inputs(self) -> Counter[str]:
        with self._lock:
            return Counter(self._in_flight_inputs)

    @property
    def answered_at(self) -> dict[str, float]:
        with self._lock:
            return dict(self._answered_at)

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._max_in_flight

    @property
    def rate_limited(self) -> int:
        with self._lock:
            return self._rate_limited

    @property
    def faults(self) -> Counter[str]:
        with self._lock:
            return Counter(self._faults)

    def snapshot(self) -> dict[str, Any]:
        """All counters at one instant, as JSON-ready values."""
        with self._lock:
            return {
                "requests": self._requests,
                "audio_answers": self._audio_answers,
                "billed_characters": self._billed_characters,
                "by_input": dict(self._by_input),
                "arrivals": list(self._arrivals),
                "in_flight": self._in_flight,
                "max_in_flight": self._max_in_flight,
                "rate_limited": self._rate_limited,
                "faults": dict(self._faults),
                "in_flight_inputs": dict(self._in_flight_inputs),
                "answered_at": dict(self._answered_at),
            }
