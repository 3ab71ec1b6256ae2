"""Store throughput: steps made durable per second, SQLite versus PostgreSQL, side by side.

Both stores get exactly the same batches (built once, before timing): runs of seven steps,
each step with its input and output payloads (distinct canonical JSON), a data edge to the
next step, and one finding per run, the shape the SDK's background writer produces. Every
``Store.write`` is one durable transaction (SQLite: WAL, ``synchronous=FULL``; PostgreSQL:
``synchronous_commit=on``), so the clock covers what a recorder waits for before ``flush()``
returns. Two batch sizes: the writer's large batches under load, and one run per batch
(each commit waits for its own fsync). Each is measured with the store alone
(``FLIGHTLOG_LEDGER=off``) and with the audit ledger attached (the default: every record
also becomes a Merkle-log leaf in the same transaction).

Each store is fresh: a SQLite file in a temporary directory, and a throwaway PostgreSQL
database ``flightlog_bench_<random>`` (created, then dropped) on the server named by
``--pg`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``, the admin database used
only to create and drop it).

Run: ``python bench/store_throughput.py [--runs 2000] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import orjson

from flightlog.app import open_store
from flightlog.model import Batch, Edge, Finding, Payload, Run, Step

STEPS_PER_RUN = 7
NAMES = ("intake", "search_policy", "plan", "price", "write", "validate", "notify")
KINDS = ("agent", "tool", "llm", "tool", "llm", "guardrail", "function")


def _payload(value: object) -> Payload:
    data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return Payload(hash=hashlib.sha256(data).hexdigest(), data=data, size=len(data))


def build_batches(runs: int, runs_per_batch: int, seed: str) -> list[Batch]:
    """``runs`` runs of seven steps, grouped ``runs_per_batch`` to a batch."""
    batches: list[Batch] = []
    b = Batch()
    t = 1_700_000_000_000_000_000
    for r in range(runs):
        run_id = hashlib.md5(f"{seed}-{r}".encode()).hexdigest()
        claim = {"claim": r, "text": f"burst pipe in unit {r}, water damage to the kitchen"}
        run_in = _payload(claim)
        b.payloads.append(run_in)
        prev: str | None = None
        for i in range(STEPS_PER_RUN):
            sid = f"{r:08x}{i:08x}"
            inp = _payload({"value": claim, "step": NAMES[i], "prev": prev})
            out = _payload({"result": f"{NAMES[i]} output for claim {r}", "score": i / 7})
            b.payloads += [inp, out]
            b.steps.append(
                Step(
                    run_id=run_id,
                    id=sid,
                    name=NAMES[i],
                    kind=KINDS[i],
                    index=i + 1,
                    agent=NAMES[i] + "-agent",
                    owner="claims-team",
                    status="ok",
                    started_ns=t + i * 1000,
                    ended_ns=t + i * 1000 + 900,
                    input_hash=inp.hash,
                    output_hash=out.hash,
                    model="scripted-1" if KINDS[i] == "llm" else None,
                    input_tokens=100 if KINDS[i] == "llm" else None,
                    output_tokens=20 if KINDS[i] == "llm" else None,
                    attributes={"attempt": 1},
                )
            )
            if prev is not None:
                b.edges.append(Edge(run_id, prev, sid, "data", "content"))
            prev = sid
        b.findings.append(
            Finding(
                id=f"{run_id}-f",
                run_id=run_id,
                step_id=prev,
                detector="check",
                severity="info",
                message="notified",
                created_ns=t + 9000,
            )
        )
        b.runs.append(
            Run(
                id=run_id,
                workflow="claims-triage",
                owner="claims-team",
                status="succeeded",
                started_ns=t,
                ended_ns=t + 10_000,
                input_hash=run_in.hash,
                declared_steps=STEPS_PER_RUN,
            )
        )
        t += 20_000
        if len(b.runs) == runs_per_batch:
            batches.append(b)
            b = Batch()
    if b.runs:
        batches.append(b)
    return batches


def steps_per_second(url: str, batches: list[Batch], ledger: bool, keydir: str) -> float:
    os.environ["FLIGHTLOG_LEDGER"] = "on" if ledger else "off"
    os.environ["FLIGHTLOG_LEDGER_KEY"] = str(Path(keydir) / f"{secrets.token_hex(4)}.key")
    os.environ["FLIGHTLOG_LEDGER_WITNESS"] = "off"
    store = open_store(url)
    try:
        t0 = time.perf_counter()
        for batch in batches:
            store.write(batch)
        elapsed = time.perf_counter() - t0
        steps = sum(len(b.steps) for b in batches)
        assert store.count_runs() == sum(len(b.runs) for b in batches)
    finally:
        store.close()
    return steps / elapsed


class Postgres:
    """A throwaway database on the server of ``admin_url``."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url

    def __enter__(self) -> str:
        import psycopg

        self.name = f"flightlog_bench_{secrets.token_hex(6)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        p = urlsplit(self.admin_url)
        return urlunsplit((p.scheme, p.netloc, "/" + self.name, p.query, p.fragment))

    def __exit__(self, *exc: object) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def server_version(admin_url: str) -> str:
    import psycopg

    with psycopg.connect(admin_url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=2000, help="runs per measurement (7 steps each)")
    ap.add_argument(
        "--small-runs", type=int, default=300, help="runs for the one-run-per-batch measurement"
    )
    ap.add_argument(
        "--runs-per-batch",
        type=int,
        default=140,
        help="runs per large batch (140 runs = 980 steps, the writer's batch size)",
    )
    ap.add_argument("--repeat", type=int, default=3, help="measurements per cell; the median")
    ap.add_argument(
        "--pg",
        default=os.environ.get(
            "FLIGHTLOG_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = ap.parse_args()

    print(f"machine: {machine()}; PostgreSQL {server_version(args.pg)}")
    cases = [
        (f"{args.runs_per_batch * STEPS_PER_RUN} steps per batch", args.runs, args.runs_per_batch),
        (f"{STEPS_PER_RUN} steps per batch (one run)", args.small_runs, 1),
    ]
    rows = []
    for ledger in (False, True):
        for label, runs, per_batch in cases:
            what = ("with audit ledger" if ledger else "store only") + ", " + label
            results: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
            for rep in range(args.repeat):
                # Same batches for both stores; fresh records per repetition.
                batches = build_batches(runs, per_batch, seed=f"{what}-{rep}")
                with tempfile.TemporaryDirectory() as tmp:
                    results["sqlite"].append(
                        steps_per_second(
                            f"sqlite:///{Path(tmp) / 'bench.db'}", batches, ledger, tmp
                        )
                    )
                    with Postgres(args.pg) as url:
                        results["postgresql"].append(steps_per_second(url, batches, ledger, tmp))
                print(
                    f"  {what}, run {rep + 1}: SQLite {results['sqlite'][-1]:,.0f} steps/s, "
                    f"PostgreSQL {results['postgresql'][-1]:,.0f} steps/s",
                    flush=True,
                )
            lite = statistics.median(results["sqlite"])
            pg = statistics.median(results["postgresql"])
            rows.append((what, runs * STEPS_PER_RUN, lite, pg, pg / lite))

    print()
    print("| store, batches | steps | SQLite steps/s | PostgreSQL steps/s | PostgreSQL / SQLite |")
    print("|---|---:|---:|---:|---:|")
    for label, steps, lite, pg, ratio in rows:
        print(f"| {label} | {steps:,} | {lite:,.0f} | {pg:,.0f} | {ratio:.2f}× |")


if __name__ == "__main__":
    main()
