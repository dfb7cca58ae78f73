"""A worker reads its config in a forked child (config.load_in_child, docs/load.md "Memory
at idle"): the same config and the same errors, at their file and line, as a load in
process; only the origins (the line of every key) are not kept."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from worker.bootstrap.config_in_force import LiveConfig, compile_config
from worker.config import ConfigError, load_config, load_in_child, watching_problems

GOOD = """\
sources:
  - name: world
    feed: https://example.org/world.xml
    every: 5m
  - name: local
    page: https://example.org/local/
    follow: /local/
watchlists:
  - name: quokka
    keywords: [Quokka]
    rule: 'Quokka AND (harbour OR budget)'
    notify: [archive]
channels:
  - name: archive
    file: alerts.jsonl
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "newswatch.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_result_equals_an_in_process_load_without_origins(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    here = load_config(path)
    there, problems = load_in_child(path, check=watching_problems)
    assert problems == []
    assert there.config == here.config
    assert (there.path, there.version) == (here.path, here.version)
    assert here.origins and not there.origins
    compiled = compile_config(path, in_child=True)
    assert compiled.loaded.config == compile_config(path).loaded.config
    assert compiled.version == here.version


@pytest.mark.parametrize(
    "text",
    [
        GOOD.replace("every: 5m", "every: often"),  # schema
        GOOD.replace("notify: [archive]", "notify: [nowhere]"),  # a reference
        GOOD.replace("    every: 5m\n", "    every: 5m\n   bad: [indent\n"),  # YAML
        GOOD.replace("Quokka AND (harbour OR budget)", "Quokka AND (harbour OR"),  # a rule
        GOOD.split("watchlists:")[0],  # watches nothing
        GOOD.replace("https://example.org/world.xml", "${NOT_SET_ANYWHERE}"),  # env
    ],
    ids=["schema", "reference", "yaml", "rule", "watching", "env"],
)
def test_a_bad_config_gives_the_same_errors_with_file_and_line(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as here:
        compile_config(path)
    with pytest.raises(ConfigError) as there:
        compile_config(path, in_child=True)
    assert there.value.problems == here.value.problems
    assert all(p.file == str(path) for p in there.value.problems)
    assert any(p.line for p in there.value.problems), str(there.value)


def test_a_child_that_dies_is_a_config_error_and_a_reload_keeps_the_last_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, GOOD)
    live = LiveConfig(path, check_seconds=0)
    good = live.current()
    import worker.config.loader as loader

    def killed(*_: object, **__: object) -> None:  # runs in the child: it dies unanswered
        os.kill(os.getpid(), signal.SIGKILL)

    monkeypatch.setattr(loader, "load_config", killed)
    with pytest.raises(ConfigError, match="killed by signal 9"):
        load_in_child(path)
    path.write_text(GOOD.replace("5m", "10m"), encoding="utf-8")
    assert live.current() is good
    assert live.last_error and "killed by signal 9" in live.last_error


def test_a_stuck_child_is_killed_after_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, GOOD)
    import time

    import worker.config.loader as loader

    monkeypatch.setattr(loader, "load_config", lambda *_: time.sleep(60))
    with pytest.raises(ConfigError, match="not loaded within 1 s"):
        load_in_child(path, timeout=1)
