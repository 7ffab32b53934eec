"""tts-pipeline: async batch speech synthesis for the Coze speech API."""
