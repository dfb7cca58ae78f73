"""Fault tests print the processes' logs when they fail: the hook records the outcome."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.processes import ProcessScene

FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    if call.when == "call":
        item.stash[FAILED] = outcome.get_result().failed


@pytest.fixture
def scenes(request: pytest.FixtureRequest) -> Iterator[list[ProcessScene]]:
    """The scenes a test makes; closed at the end, with their logs if the test failed."""
    made: list[ProcessScene] = []
    yield made
    failed = request.node.stash.get(FAILED, True)
    for scene in made:
        scene.close(failed)
