"""``python -m lib.replay``."""

import sys

from lib.replay.cli import main

sys.exit(main())
