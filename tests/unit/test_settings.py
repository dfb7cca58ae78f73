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


def _user_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment whose home is under tmp_path: never the real one."""
    return {"HOME": str(tmp_path / "home"), **extra}


def _write(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("sources: []\n")
    return path


def test_config_discovery_order(tmp_path, monkeypatch):
    """--config, NEWSWATCH_CONFIG, ./config/newswatch.yaml, then the per-user one."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    env = _user_env(tmp_path)
    # nothing anywhere: the current folder's default, and both places named for the message
    nothing = Settings.from_env(env)
    assert nothing.config_path == cwd / "config" / "newswatch.yaml"
    assert nothing.config_searched == (
        cwd / "config" / "newswatch.yaml",
        tmp_path / "home" / ".config" / "newswatch" / "newswatch.yaml",
    )
    assert "newswatch init" in (nothing.missing_config() or "")
    # the per-user config (HOME/.config), and its data folder (HOME/.local/share)
    user = _write(tmp_path / "home" / ".config" / "newswatch" / "newswatch.yaml")
    found = Settings.from_env(env)
    assert found.config_path == user
    assert found.data_dir == tmp_path / "home" / ".local" / "share" / "newswatch"
    assert found.defaulted == ()
    assert found.missing_config() is None
    # the current folder's config comes before the per-user one, with ./data
    local = _write(cwd / "config" / "newswatch.yaml")
    assert Settings.from_env(env).config_path == local
    assert Settings.from_env(env).data_dir == cwd / "data"
    # NEWSWATCH_CONFIG before both, --config before that
    given = _write(tmp_path / "given.yaml")
    assert Settings.from_env({**env, "NEWSWATCH_CONFIG": str(given)}).config_path == given
    flag = _write(tmp_path / "flag.yaml")
    assert (
        Settings.from_env({**env, "NEWSWATCH_CONFIG": str(given)}, config=flag).config_path == flag
    )
    # a data folder that is set wins over the per-user one
    local.unlink()
    data = tmp_path / "elsewhere"
    assert Settings.from_env({**env, "NEWSWATCH_DATA_DIR": str(data)}).data_dir == data


def test_xdg_directories_win_over_home(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = _user_env(
        tmp_path, XDG_CONFIG_HOME=str(tmp_path / "xc"), XDG_DATA_HOME=str(tmp_path / "xd")
    )
    user = _write(tmp_path / "xc" / "newswatch" / "newswatch.yaml")
    _write(tmp_path / "home" / ".config" / "newswatch" / "newswatch.yaml")  # not used
    settings = Settings.from_env(env)
    assert settings.config_path == user
    assert settings.data_dir == tmp_path / "xd" / "newswatch"
    # a relative XDG value is ignored, as the XDG spec says: back to HOME
    relative = Settings.from_env({**env, "XDG_CONFIG_HOME": "xc"})
    assert relative.config_path == tmp_path / "home" / ".config" / "newswatch" / "newswatch.yaml"


def test_no_home_no_per_user_lookup(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({}).config_searched == (tmp_path / "config" / "newswatch.yaml",)


def test_a_threads_pool_gets_a_database_connection_per_thread():
    from worker.service.startup import _threads

    assert Settings.from_env({}).sized_for_threads(16).db_pool_size == 16
    assert Settings.from_env({}).sized_for_threads(2).db_pool_size == 5  # never below 5
    given = Settings.from_env({"NEWSWATCH_DB_POOL_SIZE": "3"})
    assert given.sized_for_threads(16).db_pool_size == 3  # what the operator said
    # the worker's options, as Celery hands them to celeryd_init
    assert _threads({"pool": "threads", "concurrency": 12}) == 12
    assert _threads({"pool": "prefork", "concurrency": 12}) == 0
    assert _threads({"concurrency": 12}) == 0


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///newswatch.db",
        "sqlite:////var/lib/newswatch/newswatch.db",
        "sqlite+pysqlite:///data/a%20b.db?timeout=30",
        "sqlite:///file:nw.db?mode=ro&uri=true",
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///",
        "postgresql+psycopg://nw:secret@db:5432/newswatch",
        "postgresql://localhost/sqlite",
        "mysql://u:p@[::1]:3306/x?charset=utf8",
    ],
)
def test_the_sqlite_path_is_read_as_sqlalchemy_reads_the_url(tmp_path, url):
    # sqlite_path parses the URL itself (the supervisor keeps no SQLAlchemy): the same file
    from dataclasses import replace

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    expected = (
        Path(parsed.database).absolute()
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")
        else None
    )
    settings = replace(Settings.from_env({"NEWSWATCH_DATA_DIR": str(tmp_path)}), database_url=url)
    assert settings.sqlite_path == expected
