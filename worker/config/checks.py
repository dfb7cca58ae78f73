"""Checks on a loaded config: one that would watch nothing, a reload that removes much of
what was watched."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from worker.config.loader import LoadedConfig, yaml_files
from worker.config.problems import ConfigProblem
from worker.config.schema import Config

RESOLVE_TIMEOUT = 3.0  # seconds per host name: check-config must not hang on a dead DNS


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
    check-config and warned of at start; host names are resolved by
    `resolved_address_problems` (check-config only)."""
    # netguard where it is used: it loads requests, which every process importing the
    # config package (the supervisor of `run`) would keep otherwise (docs/load.md)
    from worker.http.netguard import AllowList, is_allowed_address

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


def resolved_address_problems(
    loaded: LoadedConfig, timeout: float = RESOLVE_TIMEOUT
) -> tuple[list[ConfigProblem], list[ConfigProblem]]:
    """(errors, warnings) for sources whose host NAME resolves to a private, loopback or
    link-local address that `fetch.allow_networks` does not allow: refused as a literal
    private address is (every fetch would be refused). A name that does not resolve
    now is a warning, not an error: DNS may be down where the check runs."""
    from worker.http.netguard import AllowList, is_allowed_address, resolve_addresses

    allow = AllowList.parse(loaded.config.fetch.allow_networks)
    errors, warnings = [], []
    answers: dict[str, list[str] | str] = {}  # one lookup per host
    for i, source in enumerate(loaded.config.sources):
        host = (urlsplit(source.url).hostname or "").lower()
        if not host or allow.allows_host(host) or _literal_or_local(host):
            continue
        if host not in answers:
            try:
                answers[host] = resolve_addresses(host, timeout)
            except (OSError, UnicodeError) as exc:  # gaierror, TimeoutError, a bad label
                answers[host] = str(exc) or type(exc).__name__
        answer = answers[host]
        file, line = loaded.where("sources", i, source.kind)
        where = f"sources[{source.name}].{source.kind}"
        if isinstance(answer, str):
            warnings.append(
                ConfigProblem(
                    file,
                    line,
                    where,
                    f"warning: could not resolve {host} ({answer}); its address was not checked",
                )
            )
        elif blocked := [a for a in answer if not is_allowed_address(a, allow)]:
            errors.append(
                ConfigProblem(
                    file,
                    line,
                    where,
                    f"{host} resolves to {', '.join(blocked)}, a private address: every fetch "
                    "would be refused; to monitor it, add it to fetch.allow_networks "
                    f"(e.g. allow_networks: [{host}])",
                )
            )
    return errors, warnings


def _literal_or_local(host: str) -> bool:
    """Judged without DNS by `address_problems`."""
    from worker.http.netguard import is_allowed_address

    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        is_allowed_address(host)
    except ValueError:
        return False
    return True
