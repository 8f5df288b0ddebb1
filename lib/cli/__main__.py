"""``python -m lib.cli``: the ``quire`` command without its installed script."""

from lib.cli.app import app

app(prog_name="quire")
