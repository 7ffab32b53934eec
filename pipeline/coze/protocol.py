"""Facts of the Coze HTTP protocol that the client and the local server must agree on."""

from __future__ import annotations

__all__ = ["LOGID_HEADER", "SPEECH_PATH", "VOICES_PATH"]

SPEECH_PATH = "/v1/audio/speech"
VOICES_PATH = "/v1/audio/voices"
# The trace id Coze puts on every answer; support asks for it.
LOGID_HEADER = "X-Tt-Logid"
