"""The config file as it is now: reloaded when it changes, last good version kept.

Every worker process holds one `LiveConfig`. At most every `check_seconds` it
looks at the files' size and mtime; when they changed it loads, validates and
compiles the new version. A broken edit is refused loudly (logged with every
problem) and the last good version stays in force.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.config import (
    ConfigError,
    ConfigProblem,
    LoadedConfig,
    WatchlistSpec,
    load_config,
    load_in_child,
    shrink_warning,
    watching_problems,
)
from worker.config.to_matching import to_watchlists
from worker.core.watchlists import RuleError
from worker.matching.compiler import compile_matcher
from worker.matching.matcher import Matcher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActiveConfig:
    loaded: LoadedConfig
    matcher: Matcher

    @property
    def version(self) -> str:
        return self.loaded.version


def compile_config(
    path: str | Path, *, watching: bool = True, in_child: bool = False
) -> ActiveConfig:
    """Load and compile; raises ConfigError (rules errors included) on any problem.

    `watching`: the config is to run the service, so one that watches nothing (no
    source or no watchlist, config.watching_problems) is refused too. Tools that only
    use the watchlists (`match`, `rules test`) pass False.

    `in_child`: read in a forked child (config.load_in_child), for the long-lived
    processes, which then keep the config and not what reading it built; the config
    kept has no origins (the line of every key). A rule error, found here after the
    load, is placed at its file and line by reading the file again in this process.
    """
    if in_child:  # the watching checks need the origins: they run in the child
        loaded, problems = load_in_child(path, check=watching_problems if watching else None)
    else:
        loaded = load_config(path)
        problems = watching_problems(loaded) if watching else []
    try:
        matcher = compile_matcher(to_watchlists(loaded.config.watchlists), version=loaded.version)
    except RuleError as exc:
        placed = load_config(path) if in_child else loaded
        raise ConfigError([_rule_problem(placed, exc)]) from exc
    if problems:  # once all else is valid
        raise ConfigError(problems)
    return ActiveConfig(loaded, matcher)


def _rule_problem(loaded: LoadedConfig, exc: RuleError) -> ConfigProblem:
    """A rule error at the file and line of the item it is about: the watchlist's `rule:`,
    one keyword, one alias... (or the watchlist itself)."""
    names = [w.name for w in loaded.config.watchlists]
    if exc.watchlist not in names:
        return ConfigProblem(loaded.path, None, "rule", str(exc))
    index = names.index(exc.watchlist)
    file, line = loaded.where("watchlists", index, *exc.path)
    label = _label(loaded.config.watchlists[index], exc.path)
    # the message already names the watchlist; keep the caret display on its own lines
    return ConfigProblem(file, line, label, str(exc))


def _label(spec: WatchlistSpec, path: tuple[str | int, ...]) -> str:
    """watchlists[bad].names[Hadi al-Ameri].aliases[1], like config errors name their keys."""
    out = f"watchlists[{spec.name}]"
    node: Any = spec
    for p in path:
        if isinstance(p, int):
            try:
                node = node[p]
            except (IndexError, KeyError, TypeError):
                node = None
            name = getattr(node, "name", None)
            out += f"[{name}]" if isinstance(name, str) else f"[{p}]"
        else:
            node = getattr(node, p, None)
            out += f".{p}"
    return out


def _signature(path: Path) -> tuple:
    files = sorted(path.glob("*.y*ml")) if path.is_dir() else [path]
    out: list[tuple[str | int | None, ...]] = []
    for f in files:
        try:
            st = f.stat()
        except OSError:
            out.append((str(f), None))
            continue
        out.append((str(f), st.st_mtime_ns, st.st_size))
    return tuple(out)


class LiveConfig:
    def __init__(
        self,
        path: str | Path,
        check_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.path = Path(path)
        self.check_seconds = check_seconds
        self._clock = clock
        self._lock = threading.Lock()
        # read in a child: a worker keeps the config, not what reading it built
        self._active = compile_config(self.path, in_child=True)  # bad at start-up: fatal
        self._signature = _signature(self.path)
        self._checked_at = clock()
        self.last_error: str | None = None
        # (version, what it removed) for reloads that removed more than half of the sources
        # or watchlists; outbox.check_notices raises one notice per version. Kept (the last
        # few) until then: another edit soon after must not hide one.
        self.shrinks: deque[tuple[str, str]] = deque(maxlen=8)

    def current(self) -> ActiveConfig:
        now = self._clock()
        if now - self._checked_at >= self.check_seconds:
            with self._lock:
                if now - self._checked_at >= self.check_seconds:
                    self._checked_at = now
                    self._maybe_reload()
        return self._active

    def _maybe_reload(self) -> None:
        signature = _signature(self.path)
        if signature == self._signature:
            return
        self._signature = signature
        try:
            candidate = compile_config(self.path, in_child=True)
        except ConfigError as exc:
            self.last_error = str(exc)
            log.error("config change refused, keeping version %s:\n%s", self._active.version, exc)
            return
        if candidate.version != self._active.version:
            shrunk = shrink_warning(self._active.loaded.config, candidate.loaded.config)
            if shrunk:
                self.shrinks.append((candidate.version, shrunk))
                log.warning(
                    "config reloaded: version %s -> %s: %s",
                    self._active.version,
                    candidate.version,
                    shrunk,
                )
            else:
                log.info(
                    "config reloaded: version %s -> %s", self._active.version, candidate.version
                )
            self._active = candidate
        self.last_error = None
