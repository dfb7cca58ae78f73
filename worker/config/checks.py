"""Checks on a loaded config: one that would watch nothing, a reload that removes much of
what was watched."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from worker.config.loader import LoadedConfig, yaml_files
from worker.config.problems import ConfigProblem
from worker.config.schema import Config
from worker.http.netguard import AllowList, is_allowed_address


def watching_problems(loaded: LoadedConfig) -> list[ConfigProblem]:
    """A config with no enabled source or no watchlist monitors nothing: an emptied or
    truncated file, a folder whose files moved. Refused unless `allow_empty: true`."""
    cfg = loaded.config
    if cfg.allow_empty:
        return []
    out = []
    root = Path(loaded.path)
    for section, count in (
        ("sources", sum(1 for s in cfg.sources if s.enabled)),
        ("watchlists", len(cfg.watchlists)),
    ):
        if count:
            continue
        file, line = loaded.where(section)
        if line is None and not root.is_dir():
            line = 1
        what = "no enabled sources" if section == "sources" and cfg.sources else f"no {section}"
        if root.is_dir() and not any(yaml_files(root)):
            what += " (no .yaml or .yml file in this folder)"
        out.append(
            ConfigProblem(
                file,
                line,
                "",
                f"{what}: this config would watch nothing (set 'allow_empty: true' if meant)",
            )
        )
    return out


def shrink_warning(old: Config, new: Config) -> str | None:
    """What a reload removes when it drops more than half of the enabled sources or of the
    watchlists: applied (the edit may be meant), but never silently."""
    parts = []
    for section, before, after in (
        (
            "sources",
            {s.name for s in old.sources if s.enabled},
            {s.name for s in new.sources if s.enabled},
        ),
        ("watchlists", {w.name for w in old.watchlists}, {w.name for w in new.watchlists}),
    ):
        gone = sorted(before - after)
        if before and len(gone) * 2 > len(before):
            shown = ", ".join(gone[:10]) + (f" and {len(gone) - 10} more" if len(gone) > 10 else "")
            parts.append(f"{len(gone)} of {len(before)} {section} ({shown})")
    return "the reloaded config removes " + " and ".join(parts) if parts else None


# a lower-case operator outside quotes: the rule grammar reads it as a word of a phrase
_LOWER_OPERATOR = re.compile(r"(?<![\w*])(and|or|not)(?![\w*])")
_QUOTED = re.compile(r'"[^"]*"')


def config_warnings(loaded: LoadedConfig) -> list[ConfigProblem]:
    """What a config may mean but probably does not: applied, never silently (printed by
    check-config and logged at start and reload). A watchlist with no `notify` (its matches
    are stored but sent nowhere); a rule with a lower-case and/or/not (a word of a phrase:
    `Guterres and ceasefire` looks for that three-word phrase)."""
    out = []
    for i, wl in enumerate(loaded.config.watchlists):
        if not wl.notify:
            file, line = loaded.where("watchlists", i)
            out.append(
                ConfigProblem(
                    file,
                    line,
                    f"watchlists[{wl.name}]",
                    "warning: no 'notify': its matches are stored but sent to no channel",
                )
            )
        if wl.rule and (found := _LOWER_OPERATOR.search(_QUOTED.sub(" ", wl.rule))):
            word = found.group(1)
            file, line = loaded.where("watchlists", i, "rule")
            out.append(
                ConfigProblem(
                    file,
                    line,
                    f"watchlists[{wl.name}].rule",
                    f"warning: lower-case {word!r} is read as a word of a phrase, not an "
                    f"operator; write {word.upper()} to combine terms (or quote the phrase "
                    "to keep it)",
                )
            )
    return out


def address_problems(loaded: LoadedConfig) -> list[ConfigProblem]:
    """Sources at a private, loopback or link-local address (a literal IP or `localhost`)
    that `fetch.allow_networks` does not allow: every fetch would be refused. Refused by
    check-config (host names are resolved only by `check-config --connect`)."""
    allow = AllowList.parse(loaded.config.fetch.allow_networks)
    out = []
    for i, source in enumerate(loaded.config.sources):
        host = (urlsplit(source.url).hostname or "").lower()
        if not host or allow.allows_host(host):
            continue
        try:
            private = not is_allowed_address(host, allow)
        except ValueError:  # a host name
            private = host == "localhost" or host.endswith(".localhost")
        if private:
            file, line = loaded.where("sources", i, source.kind)
            out.append(
                ConfigProblem(
                    file,
                    line,
                    f"sources[{source.name}].{source.kind}",
                    f"{host} is a private address: every fetch would be refused; to monitor "
                    f"it, add it to fetch.allow_networks (e.g. allow_networks: [{host}])",
                )
            )
    return out
