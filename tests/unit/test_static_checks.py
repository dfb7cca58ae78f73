"""The checkout type-checks and lints clean: mypy (the files and settings of
pyproject.toml's [tool.mypy]) and ruff (lint and format) run in the README's test
command, so a type error or a lint finding fails the suite like any other test."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers.processes import REPO

RUFF_PATHS = ["worker", "tests", "bench", "tools"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=240
    )


@pytest.mark.slow
def test_mypy_finds_no_errors():
    # The cache (.mypy_cache in the checkout, as for a run by hand) makes a warm run take
    # a few seconds; a cold one type-checks everything once.
    out = _run("mypy")
    assert out.returncode == 0, f"mypy:\n{out.stdout}{out.stderr}"


def test_ruff_finds_nothing_to_fix():
    out = _run("ruff", "check", *RUFF_PATHS)
    assert out.returncode == 0, f"ruff check:\n{out.stdout}{out.stderr}"


def test_ruff_format_would_change_nothing():
    out = _run("ruff", "format", "--check", *RUFF_PATHS)
    assert out.returncode == 0, f"ruff format --check:\n{out.stdout}{out.stderr}"
