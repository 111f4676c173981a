"""The repository passes ruff (ruff.toml: lint and format); tasklogs/ passes mypy (setup.cfg [mypy])."""

import subprocess
import sys

import pytest

from testkit import ROOT


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    "command", [("ruff", "check", "."), ("ruff", "format", "--check", ".")], ids=["check", "format"]
)
def test_ruff_passes(command):
    result = run(*command)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}{result.stderr}"


def test_mypy_passes_over_tasklogs():
    result = run("mypy")
    assert result.returncode == 0, f"mypy:\n{result.stdout}{result.stderr}"
