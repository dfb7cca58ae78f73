"""Settings come from an environment mapping and a command's flags (that nobody writes
`os.environ` is checked by tests/unit/test_architecture.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.core.errors import InputError
from worker.settings import Settings, SettingsError

WORKER = Path(__file__).resolve().parents[2] / "worker"


def test_flags_override_the_environment(tmp_path):
    env = {"NEWSWATCH_CONFIG": "from-env.yaml", "NEWSWATCH_DATA_DIR": str(tmp_path)}
    assert Settings.from_env(env).config_path == Path("from-env.yaml").absolute()
    flagged = Settings.from_env(env, config=tmp_path / "flag.yaml")
    assert flagged.config_path == tmp_path / "flag.yaml"
    assert flagged.defaulted == ()
    assert Settings.from_env({}).defaulted == ("config", "data folder")
    assert Settings.from_env({}, config="c.yaml").defaulted == ("data folder",)
    # a pool size from a flag is only the default: the environment's setting wins
    assert Settings.from_env({}, db_pool_size=16).db_pool_size == 16
    assert Settings.from_env({"NEWSWATCH_DB_POOL_SIZE": "7"}, db_pool_size=16).db_pool_size == 7


def test_a_bad_setting_is_an_input_error_naming_the_variable():
    with pytest.raises(SettingsError, match="NEWSWATCH_TICK_SECONDS") as caught:
        Settings.from_env({"NEWSWATCH_TICK_SECONDS": "soon"})
    assert isinstance(caught.value, InputError)
    assert caught.value.kind == "settings"
    assert caught.value.permanent


def test_prefork_children_are_replaced_after_a_number_of_tasks(tmp_path):
    from worker.app import create_app

    env = {"NEWSWATCH_DATA_DIR": str(tmp_path), "NEWSWATCH_BROKER_URL": "redis://127.0.0.1:1/0"}
    settings = Settings.from_env(env)
    assert settings.max_tasks_per_child == 10_000
    assert create_app(settings).conf.worker_max_tasks_per_child == 10_000
    never = Settings.from_env({**env, "NEWSWATCH_MAX_TASKS_PER_CHILD": "0"})
    assert create_app(never).conf.worker_max_tasks_per_child is None
    with pytest.raises(SettingsError, match="NEWSWATCH_MAX_TASKS_PER_CHILD"):
        Settings.from_env({**env, "NEWSWATCH_MAX_TASKS_PER_CHILD": "-1"})
