"""``python -m lib.loop.replay``."""

import sys

from lib.loop.replay.cli import main

sys.exit(main())
