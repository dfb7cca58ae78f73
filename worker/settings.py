"""Runtime settings, built once per process from an environment mapping and validated.

Everything that differs between a laptop and production lives here. A process builds
its `Settings` once, at its entry point (the CLI's `main`, `worker/celery.py` for the
`celery` command), from the environment it was given plus the command's flags, and
passes them down. Nothing writes `os.environ`: the children of `newswatch run` get
theirs from the supervisor (worker/service/supervisor.py, `child_environment`).
`${VAR}` interpolation in the config file reads the environment too; that is the
config file's own business.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote

from worker.config import DEFAULT_CONFIG_PATH
from worker.core.errors import InputError

# A database URL's driver and database, read as SQLAlchemy's `make_url` reads them (its
# pattern, less the parts a SQLite URL has no use for; tests/unit/test_settings.py
# compares the two): `sqlite_path` is asked in every process, the supervisor of `run`
# included, which keeps no SQLAlchemy (docs/load.md, "Memory at idle").
_URL = re.compile(r"(?P<name>[\w+]+)://[^/?]*(?:/(?P<database>[^?]*))?")


class SettingsError(InputError):
    """A setting in the environment that is not valid: the message names the variable."""

    kind = "settings"


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    """A number from the environment within [low, high]; the error names the variable."""
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low:g} and {high:g}")
    return value


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    value = _number(env, name, default, float("-inf"), float("inf"))
    if value <= 0:
        raise SettingsError(f"{name} must be greater than zero")
    return value


def _fraction(env: Mapping[str, str], name: str, default: float) -> float:
    return _number(env, name, default, 0, 1)


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    config_path: Path
    database_url: str
    broker_url: str | None  # None: start the embedded Redis under data_dir
    tick_seconds: float  # how often beat runs the outbox (digests, notices)
    # how often beat looks for due sources: a poll is sent when it is due, never held
    # for later (tasks.dispatch_due), so this tick is the polls' lateness bound
    dispatch_seconds: float
    sweep_seconds: float  # how often beat re-enqueues rows stuck past their lease
    lease_seconds: float  # how long a claimed row stays claimed before the sweep takes it back
    config_check_seconds: float  # how often workers look for a changed config file
    requeue_after_seconds: float  # a pending row not picked up for this long is enqueued again
    retry_base_seconds: float  # first delivery retry delay; doubles per attempt
    max_attempts: int  # parse/rules attempts before a row is quarantined
    delivery_attempts: int  # delivery attempts before it is dead
    log_level: str
    log_format: str = "text"  # text | json (one JSON object per line)
    schedule_jitter: float = 0.1  # each source polls up to this fraction of its interval late
    # beat sends the due sources in fetch batches of at most this many, each spanning at
    # most `fetch_batch_span` seconds of due times; a batch fetches on this many threads
    fetch_batch_size: int = 50
    fetch_batch_span: float = 1.0
    fetch_batch_threads: int = 8
    # Celery time limits per task kind, seconds: (soft, hard). The soft limit raises inside
    # the task (the row keeps its error and is retried); the hard one kills the pool child.
    time_limits: tuple[tuple[str, float | None, float], ...] = ()
    # database connections per process (+ as many again on overflow): a threads pool runs
    # that many tasks at once in one process, so `newswatch worker --pool threads` raises it
    db_pool_size: int = 5
    # which of "config", "data folder" were not set and so are the defaults relative to the
    # current folder: the commands say so, since a command run from the wrong folder would
    # otherwise quietly find no config or a new empty data folder
    defaulted: tuple[str, ...] = ()
    prune_seconds: float = (
        3600  # how often beat prunes rows past retention (worker/service/retention.py)
    )
    # below this much free space the SQLite database's disk counts as full: work waits
    # (worker/service/diskspace.py)
    min_free_bytes: int = 8 * 1024 * 1024
    # a prefork pool child is replaced after this many tasks (0: never), so memory that
    # only grows (caches warmed by past work, C-heap fragmentation) is given back
    max_tasks_per_child: int = 10_000
    # where the config was looked for when none was given (`config_candidates`), for the
    # message that says none was found and to run `newswatch init`
    config_searched: tuple[Path, ...] = ()
    db_pool_size_given: bool = False  # NEWSWATCH_DB_POOL_SIZE was set: a pool keeps it

    def sized_for_threads(self, threads: int) -> Settings:
        """For a threads pool: every thread may hold a database connection at once, so the
        pool has at least one per thread, unless NEWSWATCH_DB_POOL_SIZE says otherwise."""
        if self.db_pool_size_given or self.db_pool_size >= threads:
            return self
        return replace(self, db_pool_size=threads)

    def missing_config(self) -> str | None:
        """What to do when no config was given and none was found; None otherwise."""
        if not self.config_searched or self.config_path.exists():
            return None
        looked = ", ".join(str(p) for p in self.config_searched)
        return (
            f"no config found (looked at {looked}): run `newswatch init` for a starter config, "
            "or pass --config or set NEWSWATCH_CONFIG"
        )

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url is None

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file of `database_url`, absolute; None for a server or in-memory one."""
        found = _URL.match(self.database_url)
        if found is None or found["name"].split("+")[0] != "sqlite":
            return None
        database = unquote(found["database"] or "")
        if database in ("", ":memory:"):
            return None
        return Path(database).absolute()

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        config: str | os.PathLike[str] | None = None,
        db_pool_size: int | None = None,
    ) -> Settings:
        """The settings from `env` (this process's environment if None), with a command's
        flags on top: `config` (--config) wins over NEWSWATCH_CONFIG, `db_pool_size` is
        the default when NEWSWATCH_DB_POOL_SIZE is not set."""
        env = os.environ if env is None else env
        if config:
            env = {**env, "NEWSWATCH_CONFIG": str(Path(config).absolute())}
        config_path, searched = _find_config(env)
        defaulted = tuple(
            name
            for name, cwd_default in (
                (
                    "config",
                    not env.get("NEWSWATCH_CONFIG") and config_path == _CWD_CONFIG.absolute(),
                ),
                ("data folder", not env.get("NEWSWATCH_DATA_DIR")),
            )
            if cwd_default
        )
        data_dir = Path(env.get("NEWSWATCH_DATA_DIR") or "data").expanduser().absolute()
        per_user = user_data_dir(env)
        if not env.get("NEWSWATCH_DATA_DIR") and per_user and config_path == user_config_path(env):
            # the per-user config's data folder is the per-user one, whatever the current folder
            data_dir, defaulted = per_user, ()
        database_url = env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'newswatch.db'}"
        if database_url.startswith("postgres://"):  # Heroku-style URLs
            database_url = "postgresql://" + database_url[len("postgres://") :]
        if database_url.startswith("postgresql://"):
            database_url = "postgresql+psycopg://" + database_url[len("postgresql://") :]
        broker_url = env.get("NEWSWATCH_BROKER_URL") or env.get("REDIS_URL") or None
        return cls(
            data_dir=data_dir,
            config_path=config_path,
            database_url=database_url,
            broker_url=broker_url,
            tick_seconds=(tick := _positive(env, "NEWSWATCH_TICK_SECONDS", 10)),
            dispatch_seconds=_positive(env, "NEWSWATCH_DISPATCH_SECONDS", min(1.0, tick)),
            sweep_seconds=_positive(env, "NEWSWATCH_SWEEP_SECONDS", 60),
            lease_seconds=_positive(env, "NEWSWATCH_LEASE_SECONDS", 300),
            config_check_seconds=_positive(env, "NEWSWATCH_CONFIG_CHECK_SECONDS", 5),
            requeue_after_seconds=_positive(env, "NEWSWATCH_REQUEUE_AFTER_SECONDS", 120),
            retry_base_seconds=_positive(env, "NEWSWATCH_RETRY_BASE_SECONDS", 30),
            max_attempts=int(_positive(env, "NEWSWATCH_MAX_ATTEMPTS", 5)),
            delivery_attempts=int(_positive(env, "NEWSWATCH_DELIVERY_ATTEMPTS", 8)),
            log_level=(env.get("NEWSWATCH_LOG_LEVEL") or "INFO").upper(),
            log_format=_log_format(env),
            schedule_jitter=_fraction(env, "NEWSWATCH_SCHEDULE_JITTER", 0.1),
            fetch_batch_size=int(_number(env, "NEWSWATCH_FETCH_BATCH_SIZE", 50, 1, 1000)),
            fetch_batch_span=_number(env, "NEWSWATCH_FETCH_BATCH_SPAN", 1.0, 0, 60),
            fetch_batch_threads=int(_number(env, "NEWSWATCH_FETCH_BATCH_THREADS", 8, 1, 64)),
            time_limits=tuple(_time_limits(env)),
            db_pool_size=int(_positive(env, "NEWSWATCH_DB_POOL_SIZE", db_pool_size or 5)),
            defaulted=defaulted,
            prune_seconds=_positive(env, "NEWSWATCH_PRUNE_SECONDS", 3600),
            min_free_bytes=int(_number(env, "NEWSWATCH_MIN_FREE_MB", 8, 0, 1 << 20) * 1024 * 1024),
            max_tasks_per_child=int(
                _number(env, "NEWSWATCH_MAX_TASKS_PER_CHILD", 10_000, 0, 1 << 31)
            ),
            config_searched=searched,
            db_pool_size_given=bool(env.get("NEWSWATCH_DB_POOL_SIZE")),
        )


_CWD_CONFIG = DEFAULT_CONFIG_PATH  # config/newswatch.yaml in the current folder


def _user_dir(env: Mapping[str, str], xdg: str, fallback: str) -> Path | None:
    """`$XDG_…_HOME/newswatch`, or `~/<fallback>/newswatch`: the XDG Base Directory rules
    (a relative XDG value is ignored), read from `env` so that a command's environment, not
    this process's, decides. None without HOME."""
    base = env.get(xdg, "")
    if base and Path(base).is_absolute():
        return Path(base) / "newswatch"
    home = env.get("HOME")
    return Path(home) / fallback / "newswatch" if home else None


def user_config_path(env: Mapping[str, str]) -> Path | None:
    """The per-user config, found from any folder (`newswatch init` writes it)."""
    folder = _user_dir(env, "XDG_CONFIG_HOME", ".config")
    return folder / "newswatch.yaml" if folder else None


def user_data_dir(env: Mapping[str, str]) -> Path | None:
    """The data folder that goes with the per-user config."""
    return _user_dir(env, "XDG_DATA_HOME", ".local/share")


def _find_config(env: Mapping[str, str]) -> tuple[Path, tuple[Path, ...]]:
    """The config in force and the places looked at: NEWSWATCH_CONFIG (which --config
    sets), else ./config/newswatch.yaml, else the per-user one. When none exists, the
    first default (whose absence the config check reports, with the places searched)."""
    given = env.get("NEWSWATCH_CONFIG")
    if given:
        return Path(given).expanduser().absolute(), ()
    candidates = tuple(p for p in (_CWD_CONFIG.absolute(), user_config_path(env)) if p)
    found = next((p for p in candidates if p.exists()), candidates[0])
    return found, candidates


# hard limits well above the fetch deadline (60 s by default), so only a task that is
# stuck, not one that is slow, is killed
_TIME_LIMIT_DEFAULTS = {"fetch": 300.0, "parse": 300.0, "rules": 120.0, "deliver": 300.0}


def _time_limits(env: Mapping[str, str]) -> list[tuple[str, float | None, float]]:
    """(kind, soft, hard) per task kind; a soft limit of 0 means none (only the hard kill).
    Checked here because Celery refuses to *send* a task whose soft limit exceeds its hard
    one: a bad pair would stop the whole pipeline, not just slow tasks."""
    out: list[tuple[str, float | None, float]] = []
    for kind, default in _TIME_LIMIT_DEFAULTS.items():
        hard_name = f"NEWSWATCH_{kind.upper()}_TIME_LIMIT"
        soft_name = f"NEWSWATCH_{kind.upper()}_SOFT_TIME_LIMIT"
        hard = _positive(env, hard_name, default)
        soft: float | None
        if env.get(soft_name, "").strip() == "0":
            soft = None
        else:
            soft = _positive(env, soft_name, hard * 0.8)
            if soft > hard:
                raise SettingsError(f"{soft_name}={soft:g} must not exceed {hard_name}={hard:g}")
        out.append((kind, soft, hard))
    return out


def _log_format(env: Mapping[str, str]) -> str:
    value = (env.get("NEWSWATCH_LOG_FORMAT") or "text").lower()
    if value not in ("text", "json"):
        raise SettingsError(f"NEWSWATCH_LOG_FORMAT={value!r}: use text or json")
    return value
