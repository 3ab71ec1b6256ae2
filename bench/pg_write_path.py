"""The PostgreSQL write path alone: client and server CPU per step of ``Store.write``.

Batches shaped like a server's OTLP writes (500 spans: 125 runs of 4 steps, a payload per
step, ledger on) go into a fresh database ``flightlog_bench_<random>`` through one
``PostgresStore``. Two ways of sending a table's rows alternate in one process, so machine
load hits both alike:

- ``rows``: one prepared statement per row, pipelined (``cursor.executemany``), as before;
- ``columnar``: one ``INSERT ... SELECT * FROM unnest(...)`` per table and batch, every
  column one binary array (``_PgTx._columnar``), as the store does now.

Printed per trial: the process CPU per step (``time.process_time``: this process, every
thread: the writer, the ledger's integrator) and the CPU per step of the PostgreSQL
backends serving the database (``/proc/<pid>/stat`` of the backends in
``pg_stat_activity``: the server runs on this machine), then the medians.

Run: ``python bench/pg_write_path.py [--batches 12] [--repeat 3]`` (under
``flock /tmp/flightlog-bench.lock`` on a shared machine).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.pg_scaleout import ADMIN_URL, _with_db  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def batches(n: int, per: int = 500) -> list[Any]:
    from flightlog.model import Batch, Payload, Run, Step

    out = []
    now = time.time_ns()
    for _ in range(n):
        runs, steps, pays = [], [], []
        for _t in range(per // 4):
            rid = secrets.token_hex(16)
            runs.append(
                Run(
                    id=rid,
                    workflow="agent",
                    started_ns=now,
                    ended_ns=now + 10,
                    status="succeeded",
                    source="otlp",
                )
            )
            for i in range(4):
                data = f'{{"text":"{rid} {i} a prompt of some length"}}'.encode()
                h = hashlib.sha256(data).hexdigest()
                pays.append(Payload(h, data, len(data)))
                steps.append(
                    Step(
                        run_id=rid,
                        id=secrets.token_hex(8),
                        name=f"s{i}",
                        kind="llm",
                        index=i + 1,
                        started_ns=now + i,
                        ended_ns=now + i + 5,
                        input_hash=h,
                        status="ok",
                        attributes={"gen_ai.system": "openai", "k": i},
                    )
                )
        out.append(Batch(runs=runs, steps=steps, payloads=pays))
    return out


def backend_cpu_s(url: str) -> float:
    import psycopg

    with psycopg.connect(url, autocommit=True) as c:
        pids = [
            r[0]
            for r in c.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            ).fetchall()
        ]
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, default=12, help="batches of 500 steps per trial")
    ap.add_argument("--repeat", type=int, default=3, help="trials of each way")
    ap.add_argument("--pg", default=os.environ.get("FLIGHTLOG_TEST_PG", ADMIN_URL))
    args = ap.parse_args(argv)

    import psycopg

    from flightlog.app import open_store
    from flightlog.store import postgres

    name = f"flightlog_bench_{int(time.time())}_{secrets.token_hex(4)}"
    with psycopg.connect(args.pg, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = _with_db(args.pg, name)
    tmp = tempfile.TemporaryDirectory(prefix="flightlog-pgwrite-")
    os.environ["FLIGHTLOG_LEDGER_KEY"] = str(Path(tmp.name) / "ledger.key")
    columnar = postgres._PgTx._columnar
    results: dict[str, list[tuple[float, float]]] = {"rows": [], "columnar": []}
    print(f"# {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; {args.batches} x 500 steps")
    try:
        store = open_store(url)
        for _ in range(args.repeat):
            for way in ("rows", "columnar"):
                postgres._PgTx._columnar = (  # type: ignore[method-assign]
                    columnar if way == "columnar" else (lambda self, sql, rows: None)
                )
                work = batches(args.batches + 1)
                store.write(work[0])  # warm: statements prepared, caches filled
                b0, t0 = backend_cpu_s(url), time.process_time()
                for b in work[1:]:
                    store.write(b)
                cpu, bcpu = time.process_time() - t0, backend_cpu_s(url) - b0
                n = args.batches * 500
                results[way].append((cpu / n * 1e6, bcpu / n * 1e6))
                print(
                    f"{way:9s} client {cpu / n * 1e6:6.1f} µs/step   PostgreSQL backends "
                    f"{bcpu / n * 1e6:6.1f} µs/step   load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
        store.close()
    finally:
        postgres._PgTx._columnar = columnar  # type: ignore[method-assign]
        with psycopg.connect(args.pg, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        tmp.cleanup()
    for way, vals in results.items():
        print(
            f"median {way:9s} client {statistics.median(v[0] for v in vals):6.1f} µs/step   "
            f"backends {statistics.median(v[1] for v in vals):6.1f} µs/step"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
