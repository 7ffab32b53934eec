"""The small protocol the runner sees: a request in, audio (or an ``ApiError``) out.

The runner never names the Coze client: ``coze.client.SpeechClient`` is one backend, an
in-process fake in the tests is another. Errors are the tree in ``errors``: a backend raises
``TransientApiError`` for what may pass on retry, ``RequestRejected`` for a request that
is wrong, ``FatalApiError`` when nothing more can succeed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pipeline.speech import SpeechRequest


class SpeechResult(Protocol):
    """One successful answer: the audio bytes, and the host's id for it (if any)."""

    @property
    def audio(self) -> bytes: ...

    @property
    def logid(self) -> str | None: ...


class VoiceInfo(Protocol):
    """One voice a backend offers."""

    @property
    def voice_id(self) -> str: ...

    @property
    def name(self) -> str: ...


class Backend(Protocol):
    """What the runner needs: ``synthesize`` one request (the text is at most one chunk)."""

    async def synthesize(self, request: SpeechRequest) -> SpeechResult: ...


class VoiceBackend(Protocol):
    """A backend that can list its voices."""

    async def list_voices(self) -> Sequence[VoiceInfo]: ...
