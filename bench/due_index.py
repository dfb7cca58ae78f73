"""The dispatch's claim of the sources due, with and without the index on
source.next_fetch_at (migration 0012), on PostgreSQL with many sources.

    .venv/bin/python bench/due_index.py --sources 100000 --backlog 4

The sources' next polls are spread evenly over `--interval` seconds, `--backlog`
seconds of them already due; each round claims them (one `claim_due`, as a dispatch
tick does) in a transaction that is rolled back, alternating with and without the
index. Prints wall milliseconds per claim, min / median / max, and the plan used.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import insert, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from tests.helpers.servers import throwaway_database  # noqa: E402
from worker.store import models as m  # noqa: E402
from worker.store.db import Store  # noqa: E402
from worker.store.models import utcnow  # noqa: E402
from worker.store.sources import claim_due  # noqa: E402


def fill(store: Store, sources: int, interval: float, backlog: float) -> None:
    first = utcnow() - timedelta(seconds=backlog)
    step = interval / sources
    rows = [
        {
            "name": f"s{n}",
            "kind": "feed",
            "url": f"http://127.0.0.1:9/f{n}",
            "every_seconds": int(interval),
            "next_fetch_at": first + timedelta(seconds=n * step),
        }
        for n in range(sources)
    ]
    with store.session() as session:
        for at in range(0, sources, 10_000):
            session.execute(insert(m.Source), rows[at : at + 10_000])
    with store.engine.begin() as conn:
        conn.execute(text("ANALYZE source"))


def claim_ms(store: Store, limit: int) -> tuple[float, int]:
    with store.engine.connect() as conn, Session(bind=conn) as session:
        now = utcnow()
        started = time.perf_counter()
        claimed = claim_due(session, now, now, now + timedelta(seconds=60), limit)
        took = (time.perf_counter() - started) * 1000
        session.rollback()
    return took, len(claimed)


def plan(store: Store) -> str:
    with store.engine.connect() as conn:
        rows = conn.execute(
            text(
                "EXPLAIN SELECT id FROM source WHERE enabled AND next_fetch_at <= now()"
                " ORDER BY next_fetch_at LIMIT 5000"
            )
        ).all()
    return " / ".join(r[0].strip() for r in rows[:3])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sources", type=int, default=100_000)
    p.add_argument("--interval", type=float, default=300)
    p.add_argument("--backlog", type=float, default=4)
    p.add_argument("--limit", type=int, default=5000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = p.parse_args()
    with throwaway_database(args.postgres, prefix="nw_bench_due") as url:
        store = Store(url)
        store.upgrade()
        fill(store, args.sources, args.interval, args.backlog)
        times: dict[str, list[float]] = {"with index": [], "without": []}
        plans: dict[str, str] = {}
        for _ in range(args.repeat):
            for name in times:
                with store.engine.begin() as conn:
                    if name == "without":
                        conn.execute(text("DROP INDEX IF EXISTS ix_source_next_fetch_at"))
                    else:
                        conn.execute(
                            text(
                                "CREATE INDEX IF NOT EXISTS ix_source_next_fetch_at"
                                " ON source (next_fetch_at)"
                            )
                        )
                    conn.execute(text("ANALYZE source"))
                plans[name] = plan(store)
                took, claimed = claim_ms(store, args.limit)
                times[name].append(took)
        store.engine.dispose()
    print(
        f"{args.sources} sources, {claimed} due ({args.backlog:g} s backlog); load "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    for name, ms in times.items():
        print(
            f"{name:>10}: {min(ms):.1f} / {statistics.median(ms):.1f} / {max(ms):.1f} ms"
            f" per claim   plan: {plans[name]}"
        )


if __name__ == "__main__":
    main()
