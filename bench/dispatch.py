"""The dispatch's own cost: one `dispatch_due` over N due sources, on SQLite and PostgreSQL.

    .venv/bin/python bench/dispatch.py --sources 1000

No network, no broker: the sources are in the table and all due; what is timed is the
claim (the config sync is done first, untimed). Wall and CPU milliseconds per claimed
source, min / median / max of `--repeat` rounds (the claims are released between them).
Run it from a checkout of another commit to measure that commit beside this one.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import update  # noqa: E402

from tests.helpers.pipeline import Clock, make_runtime  # noqa: E402
from tests.helpers.servers import throwaway_database  # noqa: E402
from worker.sources import polling  # noqa: E402
from worker.store import models as m  # noqa: E402


@contextlib.contextmanager
def database(kind: str, admin_url: str, work: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{work / 'nw.db'}"
        return
    with throwaway_database(admin_url, prefix="nw_bench_dispatch") as url:
        yield url


def measure(kind: str, args: argparse.Namespace) -> tuple[list[float], list[float]]:
    work = Path(tempfile.mkdtemp(prefix="nw-dispatch-"))
    sources = "\n".join(
        f"  - {{name: s{i}, feed: 'http://s{i}.example/feed.xml', every: 5m}}"
        for i in range(args.sources)
    )
    config = f"sources:\n{sources}\nallow_empty: true\n"
    walls, cpus = [], []
    with database(kind, args.postgres, work) as url:
        clock = Clock()
        rt = make_runtime(work, url, config, clock)
        polling.dispatch_due(rt, limit=0)  # the config sync, untimed
        for _ in range(args.repeat):
            with rt.store.session() as s:
                s.execute(update(m.Source).values(claimed_until=None))
            clock.advance(3600)
            wall, cpu = time.perf_counter(), time.process_time()
            claimed = polling.dispatch_due(rt, limit=args.sources)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            assert len(claimed) == args.sources, len(claimed)
            walls.append(1000 * wall / args.sources)
            cpus.append(1000 * cpu / args.sources)
        rt.store.engine.dispose()
    return walls, cpus


def spread(values: list[float]) -> str:
    return f"{min(values):.3f} / {statistics.median(values):.3f} / {max(values):.3f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sources", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = p.parse_args(argv)
    print(f"{args.sources} due sources, ms per claimed source (min / median / max)")
    print("| database | wall | CPU of this process |")
    print("|---|---|---|")
    for kind in ("sqlite", "postgres"):
        walls, cpus = measure(kind, args)
        print(f"| {kind} | {spread(walls)} | {spread(cpus)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
