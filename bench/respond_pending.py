"""What ``flightlog watch`` pays each pass to find the ended runs the response engine has not
processed: ``Engine.pending_runs`` (``Store.ended_runs`` with ``unmarked_in``, one anti-join
the store writes) beside the query the engine wrote itself before (kept here only as the
reference: the figures should match), on a store of N ended runs, all but 10 processed.

    python bench/respond_pending.py [--url URL] [SIZES...]     # default: 1000 10000 50000

Prints, per size, the median wall and process-CPU milliseconds per call (15 calls). Report
the machine load (``uptime``) next to the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from flightlog.model import Batch, Run  # noqa: E402
from flightlog.respond.config import RespondConfig  # noqa: E402
from flightlog.respond.engine import Engine  # noqa: E402
from flightlog.store import open_store  # noqa: E402
from flightlog.store.base import Store  # noqa: E402

T0 = 1_700_000_000 * 10**9
CALLS = 15
BEFORE = (  # the query pending_runs ran itself before the store owned core SQL
    "SELECT id FROM runs WHERE status IN ('failed', 'degraded', 'succeeded') "
    "AND source <> 'replay' AND ended_ns >= ? AND NOT EXISTS "
    "(SELECT 1 FROM respond_processed p WHERE p.run_id = runs.id) "
    "ORDER BY ended_ns, id LIMIT ?"
)


def fill(store: Store, n: int) -> Engine:
    engine = Engine(store, RespondConfig())
    for start in range(0, n, 5000):
        runs = [
            Run(f"{i:032x}", "wf", T0 + i, "failed" if i % 7 == 0 else "succeeded", T0 + i + 5)
            for i in range(start, min(n, start + 5000))
        ]
        store.write(Batch(runs=runs))
        with store.transaction() as tx:
            tx.executemany(
                "INSERT INTO respond_processed (run_id, status, incident_id, processed_ns) "
                "VALUES (?, ?, ?, ?)",
                [(r.id, r.status, None, T0) for r in runs if int(r.id, 16) < n - 10],
            )
    return engine


def timed(fn: object) -> tuple[float, float, object]:
    walls, cpus, out = [], [], None
    for _ in range(CALLS):
        w, c = time.perf_counter(), time.process_time()
        out = fn()  # type: ignore[operator]
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls) * 1e3, statistics.median(cpus) * 1e3, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="a PostgreSQL URL (an empty database); default: SQLite")
    ap.add_argument("sizes", nargs="*", type=int, default=[1000, 10000, 50000])
    args = ap.parse_args()
    print(f"load {os.getloadavg()[0]:.2f}; median of {CALLS} calls, ms per call")
    print(f"{'ended runs':>10}  {'pending_runs wall/cpu':>22}  {'before wall/cpu':>20}")
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            store = open_store(args.url or f"sqlite:///{tmp}/pending.db")
            try:
                engine = fill(store, n)

                def before(store: Store = store) -> list[str]:
                    with store.read() as tx:
                        return [r[0] for r in tx.fetchall(BEFORE, (0, 1000))]

                nw, nc, new = timed(lambda e=engine: e.pending_runs(0))
                ow, oc, old = timed(before)
                assert new == old and len(new) == 10, (len(new), len(old))  # type: ignore[arg-type]
                print(f"{n:>10}  {nw:>11.2f} / {nc:>8.2f}  {ow:>10.2f} / {oc:>7.2f}")
            finally:
                if args.url:
                    with store.transaction() as tx:
                        for t in ("respond_processed", "runs"):
                            tx.execute(f"DELETE FROM {t}")
                store.close()


if __name__ == "__main__":
    main()
