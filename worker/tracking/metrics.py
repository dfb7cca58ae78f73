"""Counters of events that leave no row (fetches by outcome, failed attempts,
quarantines, gaps, watchdog incidents, heartbeats), counted in the worker processes.

prometheus_client's multiprocess mode keeps each process's counts in files under
`<data dir>/metrics`, which the exporter (worker/service/observability.py) sums, so a
replaced pool child's counts stay in the total.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_fetches: Any = None
# threads-pool workers count from many threads: registering the counter twice would raise
_fetches_lock = threading.Lock()


def multiprocess_dir(data_dir: Path) -> Path:
    return data_dir / "metrics"


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_folder(env: Mapping[str, str]) -> Path | None:
    """The folder this process tree counts into: prometheus_client reads it from the
    environment only, at the first count, so it must be there when the process starts
    (worker/cli/service.py starts a worker again with it when it is not). Created here."""
    path = env.get(MULTIPROC_ENV)
    if not path:
        return None
    Path(path).mkdir(parents=True, exist_ok=True)
    return Path(path)


def count_fetch(outcome: str) -> None:
    global _fetches
    if _fetches is None:
        with _fetches_lock:
            if _fetches is None:
                from prometheus_client import Counter

                _fetches = Counter(
                    "newswatch_fetches",
                    "Source fetches by outcome (ok, not_modified, error kind)",
                    ["outcome"],
                )
    _fetches.labels(outcome=outcome).inc()


_counters: dict[str, Any] = {}


def _counter(name: str, doc: str, labels: tuple[str, ...]) -> Any:
    counter = _counters.get(name)
    if counter is None:
        with _fetches_lock:
            counter = _counters.get(name)
            if counter is None:
                from prometheus_client import Counter

                counter = _counters[name] = Counter(name, doc, list(labels))
    return counter


def count_failure(unit: str, kind: str) -> None:
    """One failed attempt of a unit of work (`item` parse, `article` rules), by error kind."""
    _counter(
        "newswatch_failures",
        "Failed attempts by unit (item, article) and error kind",
        ("unit", "kind"),
    ).labels(unit=unit, kind=kind).inc()


def count_quarantined(unit: str, kind: str) -> None:
    """A unit of work given up after its attempt limit (or a permanent error)."""
    _counter(
        "newswatch_quarantined",
        "Units quarantined (terminal failed state) by unit and kind",
        ("unit", "kind"),
    ).labels(unit=unit, kind=kind).inc()


def count_unit_failure(unit: str, stage: str, error: str) -> None:
    """One unit of work failed alone (a delivery, a digest batch, a step of a tick):
    `stage` says where (load, render, send, ...), `error` the exception class or kind."""
    _counter(
        "newswatch_unit_failures",
        "Units of work that failed, by stage and class",
        ("unit", "stage", "error"),
    ).labels(unit=unit, stage=stage, error=error).inc()


def count_gap(basis: str) -> None:
    """A feed gap recorded (worker/sources/gaps.py), by what told it: `dates` or `window`."""
    _counter(
        "newswatch_gaps",
        "Feed gaps recorded: a poll found the feed past everything seen",
        ("basis",),
    ).labels(basis=basis).inc()


def count_watchdog_incident(condition: str) -> None:
    """A watchdog condition began to hold (worker/service/watchdog.py): one per incident."""
    _counter(
        "newswatch_watchdog_incidents",
        "Watchdog incidents opened, by condition",
        ("condition",),
    ).labels(condition=condition).inc()


def count_heartbeat(outcome: str) -> None:
    """A heartbeat ping: `ok`, `fail` (the fail URL was pinged), `error` (the ping failed)."""
    _counter(
        "newswatch_heartbeats",
        "Heartbeat pings by outcome",
        ("outcome",),
    ).labels(outcome=outcome).inc()
