"""``python -m pipeline``: the same as the ``tts-pipeline`` console script."""

import sys

from pipeline.cli import main

sys.exit(main())
