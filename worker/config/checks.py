"""Checks on a loaded config: one that would watch nothing, a reload that removes much of
what was watched."""

from __future__ import annotations

from pathlib import Path

from worker.config.loader import LoadedConfig, yaml_files
from worker.config.problems import ConfigProblem
from worker.config.schema import Config


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
