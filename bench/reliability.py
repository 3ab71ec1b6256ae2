"""Reliability over a million runs on SQLite: Flightlog's figures beside the same figures
computed by hand-written SQL, in one process run.

The store is built directly with SQL (it measures reading, not recording): ``--runs`` runs
of one workflow over 30 days, four steps each; at every step a run fails with probability
2% and stops there (the failed step ends in error); a quarter of the failed runs carry a
stored attribution naming the failed step. Then, each timed ``--repeat`` times (median):

- **hand-written SQL**: end-to-end counts by status, per-step reached/failed (a join of
  ``runs`` and ``steps``), failures by root cause (a join with the stored attributions):
  the minimum any implementation must read;
- **flightlog, cold**: ``reliability()`` on a store whose finished hours are not kept yet
  (it counts every hour from the records);
- **keeping the hours**: ``refresh()``, what ``flightlog watch`` does once per pass;
- **flightlog, kept hours**: ``reliability()`` again (the target: under 2 s).

The figures of both sides are compared (they must agree). Take the lock and note the load:
``flock /tmp/flightlog-bench.lock python bench/reliability.py --runs 1000000``.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("FLIGHTLOG_LEDGER", "off")

from flightlog.app import open_store  # noqa: E402
from flightlog.reliability import refresh, reliability  # noqa: E402

STEPS = ("plan", "search", "answer", "check")
DAY = 86_400 * 10**9


def build(path: Path, n: int, now: int) -> None:
    store = open_store(f"sqlite:///{path}")
    from flightlog.forensics.ledger import MIGRATIONS

    store.migrate("forensics", MIGRATIONS)
    store.close()
    c = sqlite3.connect(path)
    c.execute("PRAGMA synchronous=OFF")
    rng = random.Random(1)
    t0 = now - 30 * DAY
    runs: list[tuple[Any, ...]] = []
    steps: list[tuple[Any, ...]] = []
    atts: list[tuple[Any, ...]] = []

    def flush() -> None:
        c.executemany(f"INSERT INTO runs VALUES ({','.join('?' * 16)})", runs)
        c.executemany(f"INSERT INTO steps VALUES ({','.join('?' * 20)})", steps)
        c.executemany("INSERT INTO forensics_attributions VALUES (?, ?, ?, ?, ?)", atts)
        runs.clear()
        steps.clear()
        atts.clear()

    for i in range(n):
        rid = f"{i:032x}"
        start = t0 + i * (30 * DAY // n)
        fail = next((k for k in range(len(STEPS)) if rng.random() < 0.02), None)
        status = "failed" if fail is not None else "succeeded"
        runs.append(
            (
                rid,
                "wf",
                None,
                None,
                None,
                status,
                start,
                start + 10**9,
                None,
                None,
                None,
                f"{fail:016x}" if fail is not None else None,
                None,
                None,
                "sdk",
                "{}",
            )
        )
        last = fail if fail is not None else len(STEPS) - 1
        for k in range(last + 1):
            steps.append(
                (
                    rid,
                    f"{k:016x}",
                    None,
                    k + 1,
                    STEPS[k],
                    "tool",
                    f"agent-{k}",
                    f"team-{k}",
                    "error" if k == fail else "ok",
                    start,
                    start + 1,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    0.01,
                    "{}",
                )
            )
        if fail is not None and i % 4 == 0:
            atts.append((rid, start + 2 * 10**9, f"{fail:016x}", 0.9, "{}"))
        if len(steps) > 200_000:
            flush()
    flush()
    c.commit()
    c.close()


def by_hand(path: Path, since: int, until: int) -> dict[str, Any]:
    c = sqlite3.connect(path)
    status = dict(
        c.execute(
            "SELECT status, count(*) FROM runs WHERE workflow = 'wf' AND started_ns >= ? "
            "AND started_ns < ? GROUP BY status",
            (since, until),
        ).fetchall()
    )
    steps = {
        name: (reached, failed)
        for name, reached, failed in c.execute(
            "SELECT s.name, count(DISTINCT s.run_id), count(DISTINCT CASE WHEN r.status = "
            "'failed' AND (s.status = 'error' OR s.id = a.root_step_id) THEN s.run_id END) "
            "FROM runs r JOIN steps s ON s.run_id = r.id LEFT JOIN forensics_attributions a "
            "ON a.run_id = r.id WHERE r.workflow = 'wf' AND r.started_ns >= ? "
            "AND r.started_ns < ? GROUP BY s.name",
            (since, until),
        )
    }
    roots = dict(
        c.execute(
            "SELECT rs.name, count(*) FROM runs r LEFT JOIN forensics_attributions a ON "
            "a.run_id = r.id LEFT JOIN steps rs ON rs.run_id = r.id AND rs.id = a.root_step_id "
            "WHERE r.workflow = 'wf' AND r.status = 'failed' AND r.started_ns >= ? "
            "AND r.started_ns < ? GROUP BY rs.name",
            (since, until),
        ).fetchall()
    )
    c.close()
    return {"status": status, "steps": steps, "roots": roots}


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """Median wall-clock and CPU seconds (CPU time says more on a loaded, shared machine)."""
    times, cpu, out = [], [], None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(times), statistics.median(cpu), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--db", default=None, help="reuse (or create) this file instead of a temp one")
    args = ap.parse_args()
    now = time.time_ns()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.db) if args.db else Path(tmp) / "reliability.db"
        if not path.exists():
            t = time.perf_counter()
            build(path, args.runs, now)
            print(f"built {args.runs:,} runs in {time.perf_counter() - t:.0f} s ({path})")
        since, until = now - 30 * DAY - 10**9, now + 10**9
        store = open_store(f"sqlite:///{path}")
        if store.schema_version("reliability"):  # a reused file: start cold
            with store.transaction() as tx:
                tx.execute("DELETE FROM reliability_buckets")
        print(f"load before: {os.getloadavg()[0]:.2f} (1-min average; the machine is shared)")
        hand_s, hand_c, hand = timed(lambda: by_hand(path, since, until), args.repeat)
        cold_s, cold_c, cold = timed(
            lambda: reliability(store, since_ns=since, until_ns=until, workflow="wf"), 1
        )
        refresh_s, refresh_c, kept = timed(
            lambda: refresh(store, now_ns=now + 3 * 3_600 * 10**9, lookback_ns=40 * DAY), 1
        )
        warm_s, warm_c, warm = timed(
            lambda: reliability(store, since_ns=since, until_ns=until, workflow="wf"), args.repeat
        )
        store.close()
        wf = warm.workflows[0]
        same = (
            wf.statuses == hand["status"]
            and {s.name: (s.reached, s.failed) for s in wf.steps} == hand["steps"]
            and {s.name: s.failures for s in wf.by_step} == hand["roots"]
            and cold.to_dict() == warm.to_dict()
        )
        print(f"load after: {os.getloadavg()[0]:.2f}")
        steps = sum(s.reached for s in wf.steps)
        print(f"| {args.runs:,} runs, {steps:,} steps | wall | CPU |")
        print("|---|---|---|")
        print(
            f"| hand-written SQL (status, per-step join, root causes) | {hand_s:.2f} s | "
            f"{hand_c:.2f} s |"
        )
        print(
            f"| flightlog reliability, cold (every hour counted) | {cold_s:.2f} s | "
            f"{cold_c:.2f} s |"
        )
        print(
            f"| keeping {kept} finished hours (refresh, once per watch pass) | "
            f"{refresh_s:.2f} s | {refresh_c:.2f} s |"
        )
        print(
            f"| flightlog reliability, kept hours | {warm_s:.2f} s | {warm_c:.2f} s "
            f"({warm_c / hand_c:.2f}x the hand-written SQL) |"
        )
        print(f"figures agree with the hand-written SQL: {same}")
        if not same:
            sys.exit(1)


if __name__ == "__main__":
    main()
