"""Logs and metrics: what an operator sees of a worker that runs for months.

Logs. `setup_logging` configures the root logger once per process, as text or
as one JSON object per line (`NEWSWATCH_LOG_FORMAT=json`). The ids a record is
about (`source_id`, `item_id`, `article_id`, `delivery_id`) come from `extra=`
at the call site or from `log_context(...)`, which the Celery tasks open around
each run, so every line logged while handling a delivery carries its id even
from code that does not know about logging context.

Metrics. Two sources, chosen by what each number is:

- State is computed from the database (and the broker) at scrape time by
  `DatabaseCollector`: items, articles, matches and deliveries by state,
  sources by health, queue depth, and the publish-to-alert lag histogram
  (built from the stored timestamps, so it is cumulative by construction).
  The database is the source of truth: one exporter anywhere sees the work of
  every worker on every machine, and a restarted worker loses nothing.
- Events that leave no row (fetches by outcome, failed attempts, quarantines) are
  counted in the worker processes with prometheus_client's multiprocess mode, in files under
  `<data dir>/metrics`, which the exporter on the same host sums. A Celery pool
  child that is replaced leaves its file behind, so its counts stay in the sum.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from worker.tracking import metrics

ID_FIELDS = ("source_id", "item_id", "article_id", "delivery_id")
QUEUE_PRIORITY_SEPARATOR = "\x06\x16"  # kombu's Redis transport: one list per priority step
LAG_BUCKETS = (5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600, float("inf"))

STATE_FAMILIES = (
    ("newswatch_items", "Items (feed entries, listed links) by state", "items"),
    ("newswatch_articles", "Articles by rules state", "articles"),
    ("newswatch_matches", "Watchlist matches by state", "matches"),
)
LAG_FAMILIES = (
    (
        "newswatch_publish_to_alert_seconds",
        "From an article's publication (or first sight) to its immediate alert being sent",
        "publish",
    ),
    (
        "newswatch_seen_to_alert_seconds",
        "From newswatch first storing an article to its immediate alert being sent",
        "seen",
    ),
)

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "newswatch_log_context", default=None
)

# --- logs ----------------------------------------------------------------------------

# attributes every LogRecord has; anything else on a record came from `extra=`
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime"}
)


@contextlib.contextmanager
def log_context(**ids: Any) -> Iterator[None]:
    """Ids attached to every record logged inside the block (this thread/task only)."""
    token = _context.set({**(_context.get() or {}), **ids})
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_context.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, process, message, and the extras."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.processName,
            "pid": record.process,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The classic line, with the ids appended so they are greppable in text mode too."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = " ".join(f"{k}={getattr(record, k)}" for k in ID_FIELDS if hasattr(record, k))
        return f"{line} [{ids}]" if ids else line


# Celery's routine lines, one per beat tick and two per task run ("Scheduler: Sending due
# task", "Task ... received", "Task ... succeeded"): an idle service logged about 60 a
# minute. Shown with NEWSWATCH_LOG_LEVEL=DEBUG; otherwise only their warnings and errors
# (a failed or retried-out task still logs at ERROR).
CHATTY_LOGGERS = ("celery.beat", "celery.worker.strategy", "celery.app.trace")


def setup_logging(level: str, fmt: str = "text") -> None:
    """Configure the root logger (replacing any handler) for text or JSON lines on stderr.

    Quiet by default: Celery's per-task and per-tick lines (CHATTY_LOGGERS) only at
    DEBUG, the verbose level (NEWSWATCH_LOG_LEVEL=DEBUG)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    verbose = root.getEffectiveLevel() <= logging.DEBUG
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.WARNING)
    logging.captureWarnings(True)  # warnings become log records, so JSON mode stays JSON


def json_stdout() -> None:
    """In JSON mode, make the raw lines written to stdout JSON lines on stderr.

    Celery writes a few lines ("worker: Warm shutdown (MainProcess)") straight to file
    descriptor 1 from its signal handlers, where logging's locks could deadlock. Here
    fd 1 becomes a pipe: the signal handler's write only fills the pipe, and a thread
    re-emits each line as a JSON object with a bare os.write to stderr. Pool children
    inherit the pipe, so their stray output is relayed too."""
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    os.dup2(write_fd, 1)
    os.close(write_fd)
    threading.Thread(
        target=_relay_as_json, args=(read_fd,), name="stdout-json", daemon=True
    ).start()


def _relay_as_json(fd: int) -> None:
    with os.fdopen(fd, "rb") as pipe:
        for raw in pipe:
            text = raw.decode("utf-8", "replace").strip()
            if not text:
                continue  # Celery frames each line with blank ones
            line = {
                "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "level": "WARNING",
                "logger": "stdout",
                "pid": os.getpid(),
                "message": text,
            }
            with contextlib.suppress(OSError):
                os.write(2, (json.dumps(line, ensure_ascii=False) + "\n").encode())


# --- metrics: state computed from the database at scrape time -------------------------


class DatabaseCollector:
    """Gauges and the lag histogram from the rows (and queue depth from the broker)."""

    def __init__(self, store: Any, broker: Any | None = None, clock: Any = None) -> None:
        self.store = store
        self.broker = broker  # a redis.Redis for the broker, or None
        self.clock = clock or (lambda: datetime.now(UTC))  # ages are measured against it

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        started = time.monotonic()
        up = GaugeMetricFamily("newswatch_database_up", "1 when the database answered the scrape")
        try:
            yield from self._from_database()
            up.add_metric([], 1)
        except Exception as exc:  # a scrape must answer even when the database does not
            logging.getLogger(__name__).warning("metrics: database query failed: %s", exc)
            up.add_metric([], 0)
        yield up
        if self.broker is not None:
            yield self._queue_depth(self.broker)
        took = GaugeMetricFamily("newswatch_scrape_seconds", "Time spent computing this scrape")
        took.add_metric([], time.monotonic() - started)
        yield took

    def _from_database(self) -> Iterator[Any]:
        with self.store.session() as s:
            families = self._states(s) + self._lag(s) + self._watchdog(s)
        yield from families

    def _states(self, s: Any) -> list[Any]:
        """Rows by state, items by outcome, sources by health."""
        from prometheus_client.core import GaugeMetricFamily

        # the store imported on a scrape: this module is also the supervisor's logging,
        # and the supervisor does not keep SQLAlchemy for it (docs/load.md)
        from worker.store import status

        families = []
        for name, doc, key in STATE_FAMILIES:
            fam = GaugeMetricFamily(name, doc, labels=["state"])
            for state, n in status.counts(s, status.STATE_COLUMNS[key]).items():
                fam.add_metric([state], n)
            families.append(fam)
        fam = GaugeMetricFamily(
            "newswatch_item_outcomes",
            "Items by outcome (the drop ledger): matched, no_match, excluded, duplicate, "
            "story_duplicate, refused, quarantined, pending",
            labels=["outcome"],
        )
        for value, n in status.counts(s, status.outcome_of()).items():
            fam.add_metric([value], n)
        families.append(fam)
        fam = GaugeMetricFamily(
            "newswatch_deliveries", "Deliveries by state and kind", labels=["state", "kind"]
        )
        for state, kind, n in status.delivery_counts(s):
            fam.add_metric([state, kind], n)
        families.append(fam)
        fam = GaugeMetricFamily(
            "newswatch_sources",
            "Sources: enabled, disabled (by config or after permanent errors), failing",
            labels=["state"],
        )
        for state, n in status.source_health(s).items():
            fam.add_metric([state], n)
        families.append(fam)
        return families

    def _watchdog(self, s: Any) -> list[Any]:
        """What the watchdog judges by (worker/service/watchdog.py): how long the oldest work of
        each kind has waited, and the feed gaps on record."""
        from prometheus_client.core import GaugeMetricFamily

        from worker.store import status

        now = self.clock()
        waiting = GaugeMetricFamily(
            "newswatch_oldest_waiting_seconds",
            "How long the oldest pending item, article or due delivery has waited (0: none)",
            labels=["unit"],
        )
        for unit, since in status.oldest_waiting(s, now).items():
            waiting.add_metric([unit], max((now - since).total_seconds(), 0) if since else 0)
        gaps = GaugeMetricFamily(
            "newswatch_source_gaps", "Feed gaps on record (possible missed items)"
        )
        gaps.add_metric([], status.gap_count(s))
        return [waiting, gaps]

    def _lag(self, s: Any) -> list[Any]:
        """Histograms of publish -> alert sent and first seen -> alert sent, over every
        immediate alert ever sent: bucket counts come straight from the rows."""
        from prometheus_client.core import HistogramMetricFamily

        from worker.store import status

        finite = [b for b in LAG_BUCKETS if b != float("inf")]
        lags = status.lag_buckets(s, finite)
        out = []
        for name, doc, key in LAG_FAMILIES:
            total, total_sum, counts = lags[key]
            buckets = [(_le(b), n) for b, n in zip(finite, counts, strict=True)]
            buckets.append(("+Inf", total))
            fam = HistogramMetricFamily(name, doc)
            fam.add_metric([], buckets, sum_value=total_sum)
            out.append(fam)
        return out

    def _queue_depth(self, broker: Any) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        from worker.service.broker import QUEUES

        fam = GaugeMetricFamily(
            "newswatch_queue_depth", "Messages waiting in each broker queue", labels=["queue"]
        )
        try:
            for queue in QUEUES:
                names = [queue] + [f"{queue}{QUEUE_PRIORITY_SEPARATOR}{p}" for p in range(1, 10)]
                pipe = broker.pipeline()
                for n in names:
                    pipe.llen(n)
                fam.add_metric([queue], sum(pipe.execute()))
        except Exception as exc:  # broker down: say so by leaving the family empty
            logging.getLogger(__name__).warning("metrics: broker query failed: %s", exc)
        return fam


def _le(bound: float) -> str:
    return str(float(bound))


def build_registry(settings: Any, store: Any) -> Any:
    """The exporter's registry: worker counters from this host + database and broker state."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    from worker.service.health import broker_redis

    registry = CollectorRegistry()
    mp_dir = metrics.multiprocess_folder(os.environ) or metrics.multiprocess_dir(settings.data_dir)
    mp_dir.mkdir(parents=True, exist_ok=True)
    MultiProcessCollector(registry, path=str(mp_dir))
    registry.register(DatabaseCollector(store, broker_redis(settings)))
    from worker.service.diskspace import DiskCollector

    registry.register(DiskCollector(settings))
    return registry


def serve_metrics(settings: Any, host: str, port: int) -> None:
    """Serve /metrics until killed (SIGTERM/SIGINT)."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client import make_wsgi_app

    from worker.store.db import Store

    class _Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            logging.getLogger(__name__).debug("metrics: " + format, *args)

    store = Store(settings.database_url)
    app = make_wsgi_app(build_registry(settings, store))
    with make_server(host, port, app, handler_class=_Quiet) as server:
        logging.getLogger(__name__).info(
            "metrics on http://%s:%d/metrics", host, server.server_port
        )
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            store.dispose()
