"""The Coze contract in one place.

- ``speech``: the request fields, their ranges and validation (``SpeechParams``,
  ``SpeechRequest``, ``check_field``);
- ``codes``: Coze's error codes and what a batch client does with each (``error_class``);
- ``client``: the HTTP client, the one place where aiohttp errors become pipeline errors.

Nothing is imported here, so that ``import pipeline.coze.speech`` does not load aiohttp.
"""
