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

from worker.config.checks import shrink_warning, watching_problems
from worker.config.loader import DEFAULT_CONFIG_PATH, LoadedConfig, load_config
from worker.config.problems import ConfigError, ConfigProblem
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
    "parse_interval",
    "shrink_warning",
    "watching_problems",
]
