"""An in-process backend for runner tests, in the spirit of httpx's ``MockTransport``.

It answers ``synthesize`` from a script (an exception to raise, or None for audio) and
records every request it saw, with no server, socket or thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from pipeline.errors import ApiError
from pipeline.speech import SpeechRequest


def pcm_silence(seconds: float, sample_rate: int) -> bytes:
    """Raw 16-bit mono silence, the shortest valid ``pcm`` answer."""
    return bytes(2 * max(1, round(seconds * sample_rate)))


@dataclass(frozen=True)
class FakeResult:
    """What ``FakeBackend`` answers: satisfies ``pipeline.backend.SpeechResult``."""

    audio: bytes
    logid: str | None = None


@dataclass
class FakeBackend:
    """``answer(request, n)`` may return an ``ApiError`` to raise (``n`` counts calls from 0).

    ``latency_s`` is awaited before each answer, so concurrency can be observed.
    """

    answer: Callable[[SpeechRequest, int], ApiError | None] = lambda request, n: None
    latency_s: float = 0.0
    seconds_per_answer: float = 0.05
    requests: list[SpeechRequest] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0

    async def synthesize(self, request: SpeechRequest) -> FakeResult:
        n = len(self.requests)
        self.requests.append(request)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await anyio.sleep(self.latency_s)
        finally:
            self.in_flight -= 1
        error = self.answer(request, n)
        if error is not None:
            raise error
        rate = request.params.rate
        return FakeResult(pcm_silence(self.seconds_per_answer, rate), logid=f"fake-{n}")
