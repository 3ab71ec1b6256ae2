"""Sequencing cost of the audit log: what a writer pays to log an entry, and what the
integrator pays to put it into the tree (docs/audit.md, "Sequencing").

Entries are encoded once beforehand (encoding is measured by ``bench/ledger.py``), then:

- SQLite, inline: ``Ledger.submit`` in write transactions of ``--batch`` entries (the write
  transaction extends the tree);
- PostgreSQL, writers: the same, which inserts pending entries (one multi-row insert per
  transaction, no tree);
- PostgreSQL, integrator: ``Ledger.integrate`` until nothing is pending.

Printed per phase: entries/s (wall) and process CPU µs per entry (``time.process_time``;
the PostgreSQL server's own CPU is not included). Run::

    python bench/ledger_sequencing.py [--entries 50000] [--batch 500] \
        [--admin-url postgresql://postgres@127.0.0.1:5432/postgres]

A database ``flightlog_bench_<random>`` is created on that server and dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


def _entries(n: int) -> list[object]:
    from flightlog.ledger.config import LedgerConfig
    from flightlog.ledger.entry import Encoder
    from flightlog.ledger.log import IndexMark

    enc = Encoder(LedgerConfig()).encode
    out: list[object] = []
    t = time.time_ns()
    run = 0
    while len(out) < n:
        run_id = f"{run:032x}"
        out.append(enc("run.start", run_id, run_id, {"id": run_id, "workflow": "w"}, t))
        for s in range(18):
            data = {"id": f"{s:016x}", "run_id": run_id, "name": "step", "status": "ok"}
            out.append(enc("step", f"{run_id}/{s:016x}", run_id, data, t + s))
        out.append(IndexMark(run_id, t + 20))
        run += 1
    return out[:n]


def _timed(fn: object) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()  # type: ignore[operator]
    return time.perf_counter() - w0, time.process_time() - c0


def _submit_all(store: object, ledger: object, items: list[object], batch: int) -> None:
    for i in range(0, len(items), batch):
        with store.transaction() as tx:  # type: ignore[attr-defined]
            ledger.submit(tx, items[i : i + batch])  # type: ignore[attr-defined]


def _row(name: str, n: int, wall: float, cpu: float) -> None:
    print(f"{name:34}{n / wall:>12,.0f}{cpu / n * 1e6:>14.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=500, help="entries per write transaction")
    ap.add_argument(
        "--admin-url",
        default=os.environ.get(
            "FLIGHTLOG_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = ap.parse_args()
    os.environ.setdefault("FLIGHTLOG_LEDGER_CHECKPOINT_SECONDS", "0")  # signing is not measured
    os.environ.setdefault("XDG_CONFIG_HOME", tempfile.mkdtemp(prefix="flightlog-bench-"))

    import psycopg

    from flightlog.ledger import attach
    from flightlog.ledger.log import INTEGRATOR_ROLE
    from flightlog.store import open_store
    from flightlog.store.leader import Leadership

    items = _entries(args.entries)
    n = len(items)
    print(f"load: {os.getloadavg()[0]:.2f} (1-min average), {os.cpu_count()} CPUs")
    print(f"{'':34}{'entries/s':>12}{'CPU µs/entry':>14}")

    with tempfile.TemporaryDirectory() as tmp:
        lite = open_store(f"sqlite:///{Path(tmp) / 'bench.db'}")
        ledger = attach(lite)
        wall, cpu = _timed(lambda: _submit_all(lite, ledger, items, args.batch))
        _row("SQLite, inline (write tx)", n, wall, cpu)
        lite.close()

    name = f"flightlog_bench_{secrets.token_hex(4)}"
    p = urlsplit(args.admin_url)
    url = urlunsplit((p.scheme, p.netloc, "/" + name, p.query, p.fragment))
    with psycopg.connect(args.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        store = open_store(url)
        ledger = attach(store)
        if not ledger.pending_mode:
            print("this PostgreSQL store does not take concurrent writers: inline only")
            wall, cpu = _timed(lambda: _submit_all(store, ledger, items, args.batch))
            _row("PostgreSQL, inline (write tx)", n, wall, cpu)
        else:
            role = Leadership(url, INTEGRATOR_ROLE)  # the bench integrates, not a thread
            assert role.try_acquire()
            wall, cpu = _timed(lambda: _submit_all(store, ledger, items, args.batch))
            _row("PostgreSQL, writer (pending)", n, wall, cpu)
            wall, cpu = _timed(lambda: ledger.integrate_pending())
            _row("PostgreSQL, integrator", n, wall, cpu)
            assert ledger.pending() == 0 and ledger.head()[0] == n
            role.release()
        store.close()
    finally:
        with psycopg.connect(args.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
