"""ruff (lint + format) over the tree and mypy on lib/ and server/ stay clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lib.core.paths import PROJECT_ROOT

BIN = Path(sys.executable).parent


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_check():
    result = run(str(BIN / "ruff"), "check", ".")
    assert result.returncode == 0, result.stdout[-4000:]


def test_ruff_format():
    result = run(str(BIN / "ruff"), "format", "--check", ".")
    assert result.returncode == 0, result.stdout[-4000:]


@pytest.mark.slow
def test_mypy():
    result = run(str(BIN / "mypy"))
    assert result.returncode == 0, result.stdout[-4000:]
