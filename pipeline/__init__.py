"""tts-pipeline: async batch speech synthesis for the Coze speech API."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tts-pipeline")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
