"""The code's own checks, run by CI with the tests: lint, formatting and types.

ruff and mypy are dev dependencies and read their settings from pyproject.toml; each check
runs as its own process from the repository root, and its output is the failure message.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKS = {
    "ruff lint": ["ruff", "check", "src", "tests", "bench"],
    "ruff format": ["ruff", "format", "--check", "src", "tests", "bench"],
    "mypy": ["mypy"],
}


@pytest.mark.parametrize("check", CHECKS)
def test_the_code_passes(check: str) -> None:
    command = [sys.executable, "-m", *CHECKS[check]]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{check} failed:\n{done.stdout}{done.stderr}"
