"""Fault tests print the processes' logs when they fail: the hook records the outcome."""

from __future__ import annotations

import pytest

FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    if call.when == "call":
        item.stash[FAILED] = outcome.get_result().failed
