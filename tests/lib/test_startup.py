"""lib.core.startup: the start-up path every Quire command shares."""

from __future__ import annotations

import argparse
import os

import pytest

from lib.core import startup
from lib.core.errors import DataValidationError, ParamsError, ServerUnavailableError


def test_layers_come_back_as_the_arguments_they_were_given_as():
    parser = argparse.ArgumentParser()
    startup.add_arguments(parser, "generator.rows=5000")
    argv = ["--params", "a.yaml", "-p", "x.y=1", "--params", "b.yaml", "-p", "z=[1, 2]"]
    layers = startup.Layers.from_args(parser.parse_args(argv))
    assert layers == startup.Layers(("a.yaml", "b.yaml"), ("x.y=1", "z=[1, 2]"))
    assert layers.argv() == [
        "--params",
        "a.yaml",
        "--params",
        "b.yaml",
        "-p",
        "x.y=1",
        "-p",
        "z=[1, 2]",
    ]
    assert startup.Layers.of(None, None).argv() == []


def test_start_layers_the_environment_under_the_overrides(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))  # start() rewrites it
    monkeypatch.setenv("QUIRE__PROJECT__NAME", "from_env")
    monkeypatch.setenv("QUIRE__PROJECT__SEED", "7")
    params = startup.start(startup.Layers.of([], ["project.seed=9"]), log_level="WARNING")
    assert (params.project.name, params.project.seed) == ("from_env", 9)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ParamsError("bad key x.y", key="x.y"), 2),
        (DataValidationError("data.csv: empty file", path="data.csv"), 1),
        (ServerUnavailableError("no server answers at http://127.0.0.1:1", url="u"), 1),
    ],
)
def test_a_quire_error_is_a_message_and_an_exit_code(error, code, capsys):
    def body() -> int:
        raise error

    assert startup.guarded(body) == code
    captured = capsys.readouterr()
    assert captured.err == f"error: {error.message}\n" and captured.out == ""


def test_a_command_can_count_more_errors_as_usage(capsys):
    def body() -> int:
        raise ServerUnavailableError("nothing at u", url="u")

    assert startup.guarded(body, usage=(ParamsError, ServerUnavailableError)) == 2
    assert "error: nothing at u" in capsys.readouterr().err


def test_ctrl_c_exits_130_and_other_errors_keep_their_traceback(capsys):
    def interrupted() -> int:
        raise KeyboardInterrupt

    assert startup.guarded(interrupted) == 130
    assert capsys.readouterr().err == "interrupted\n"
    with pytest.raises(ZeroDivisionError):  # a bug, not a user error: not hidden
        startup.guarded(lambda: 1 // 0)


def test_entry_point_keeps_the_signature_and_the_code():
    @startup.entry_point
    def main(argv: list[str] | None = None) -> int:
        """Doc."""
        if argv:
            raise ParamsError(f"unexpected {argv[0]}")
        return 3

    assert main() == 3 and main(["--x"]) == 2 and main.__doc__ == "Doc."
