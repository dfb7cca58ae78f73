"""The config file: sources, watchlists and channels.

Loaded from YAML, `${VAR}` interpolated from the environment, validated with
pydantic. Every problem is reported with the file, the line, the key and what
is wrong, and all problems are reported at once.

- schema.py: the pydantic specs (what a valid config is);
- yamlread.py: YAML read safely, with the line of every key;
- loader.py: files and folders, interpolation, validation -> LoadedConfig;
- problems.py: ConfigProblem and ConfigError (file, line, key, message);
- checks.py: a config that would watch nothing, a reload that removes much;
- the config in force in a running process (LiveConfig) is worker/bootstrap/config_in_force.py.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker.config.problems import ConfigError, ConfigProblem

if TYPE_CHECKING:
    from worker.config.checks import shrink_warning, watching_problems
    from worker.config.loader import LoadedConfig, load_config, load_in_child, without_origins
    from worker.config.schema import (
        AlertPolicySpec,
        ChannelSpec,
        Config,
        EntitySpec,
        FetchSpec,
        HeartbeatSpec,
        NoticesSpec,
        RetentionSpec,
        SmtpSpec,
        SourceSpec,
        WatchlistSpec,
        parse_interval,
    )
    from worker.config.yamlread import (
        MAX_ALIAS_CHARS,
        MAX_ALIAS_VALUES,
        MAX_CONFIG_BYTES,
        MAX_DEPTH,
    )

DEFAULT_CONFIG_PATH = Path("config/newswatch.yaml")

# The rest is loaded on first use (PEP 562): the settings, and with them every process,
# import this package for the default path and ConfigError, and the supervisor of
# `newswatch run` never reads a config itself (its checks run in a child), so it does
# not keep pydantic and the schema (docs/load.md, "Memory at idle").
_LAZY = {
    "shrink_warning": "checks",
    "watching_problems": "checks",
    "LoadedConfig": "loader",
    "load_config": "loader",
    "load_in_child": "loader",
    "without_origins": "loader",
    **dict.fromkeys(
        (
            "AlertPolicySpec",
            "ChannelSpec",
            "Config",
            "EntitySpec",
            "FetchSpec",
            "HeartbeatSpec",
            "NoticesSpec",
            "RetentionSpec",
            "SmtpSpec",
            "SourceSpec",
            "WatchlistSpec",
            "parse_interval",
        ),
        "schema",
    ),
    **dict.fromkeys(
        ("MAX_ALIAS_CHARS", "MAX_ALIAS_VALUES", "MAX_CONFIG_BYTES", "MAX_DEPTH"), "yamlread"
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_CONFIG_PATH",
    "MAX_ALIAS_CHARS",
    "MAX_ALIAS_VALUES",
    "MAX_CONFIG_BYTES",
    "MAX_DEPTH",
    "AlertPolicySpec",
    "ChannelSpec",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "EntitySpec",
    "FetchSpec",
    "HeartbeatSpec",
    "LoadedConfig",
    "NoticesSpec",
    "RetentionSpec",
    "SmtpSpec",
    "SourceSpec",
    "WatchlistSpec",
    "load_config",
    "load_in_child",
    "parse_interval",
    "shrink_warning",
    "watching_problems",
    "without_origins",
]
