"""``quire``: one command for everything a Quire user runs (``quire --help`` lists them).

Heavy libraries are imported only by the subcommand that needs them, so ``quire --help`` and
shell completion answer at once.
"""

from lib.cli.app import app

__all__ = ["app"]
