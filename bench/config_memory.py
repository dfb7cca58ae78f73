"""Memory of a worker's config with many sources: read in process, or in a forked child.

    .venv/bin/python bench/config_memory.py                      # 100,000 sources
    .venv/bin/python bench/config_memory.py --sources 10000 --repeat 3

A config of `--sources` feeds (one watchlist, one channel) is written to a temporary
folder. Then, each in a fresh interpreter, the config is compiled as a worker compiles
it (worker/bootstrap/config_in_force.py, `compile_config`), either in process (how
workers read it before) or with `in_child=True` (config.load_in_child: read in a forked
child, pickled back without origins), and the result is kept, as a worker keeps it.
Printed per way, in MB: the RSS after the imports, the peak RSS of the process
(VmHWM), the RSS retained after the load and a gc.collect(), and the seconds taken. The
peak of the child that reads the config is not counted in the in-child row: it is gone
when the worker runs. The code measured is the checkout next to this script.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

MEASURE = """
import gc, json, sys, time
from pathlib import Path

def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024  # kB -> MB
    raise KeyError(key)

from worker.bootstrap.config_in_force import compile_config
import worker.config.loader, worker.config.schema  # what both ways import anyway
gc.collect()
before = status("VmRSS")
start = time.perf_counter()
active = compile_config(sys.argv[1], in_child=sys.argv[2] == "child")
seconds = time.perf_counter() - start
gc.collect()
print(json.dumps({
    "before": before, "peak": status("VmHWM"), "retained": status("VmRSS"),
    "seconds": seconds, "sources": len(active.loaded.config.sources),
}))
"""


def write_config(folder: Path, sources: int) -> Path:
    path = folder / "many.yaml"
    with path.open("w", encoding="utf-8") as f:
        f.write("sources:\n")
        for i in range(sources):
            f.write(
                f"  - name: source-{i}\n"
                f"    feed: https://news{i % 997}.example.org/feeds/{i}.xml\n"
                f"    every: {5 + i % 3}m\n"
            )
        f.write(
            "watchlists:\n  - name: quokka\n    keywords: [Quokka]\n    notify: [archive]\n"
            f"channels:\n  - name: archive\n    file: {folder / 'alerts.jsonl'}\n"
        )
    return path


def measure(path: Path, way: str) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path), way],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sources", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=1, help="runs of each way, alternating")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nw-config-") as tmp:
        path = write_config(Path(tmp), args.sources)
        size = path.stat().st_size / 2**20
        runs: dict[str, list[dict[str, float]]] = {"process": [], "child": []}
        for _ in range(args.repeat):
            for way in runs:  # alternating, so that the machine's load falls on both
                runs[way].append(measure(path, way))
    print(
        f"config of {args.sources} sources ({size:.1f} MB of YAML), compiled as a worker "
        f"does; median of {args.repeat}; load average {os.getloadavg()[0]:.1f} (MB, s)"
    )
    print(f"{'read':10} {'RSS before':>10} {'peak':>8} {'retained':>9} {'seconds':>8}")
    for way, rows in runs.items():
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print(
            f"{'in ' + way:10} {med['before']:10.1f} {med['peak']:8.1f} {med['retained']:9.1f} "
            f"{med['seconds']:8.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
