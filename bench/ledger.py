"""The audit ledger: durable appends, inclusion proofs and full verification, side by side
with pymerkle (a maintained Python Merkle-tree library, SQLite backend) on the same leaves.

Measured, each in one process run:

1. Durable batched appends: ``Ledger.append`` of step entries (RFC 8785 encoding, salted
   commitments, leaf + interior hashes, insert), ``batch`` entries per committed SQLite
   transaction (WAL, synchronous=FULL); pymerkle ``SqliteTree.append_entries`` on the very
   same entry bytes (its default rollback journal, synchronous=FULL: also durable).
2. Records + leaves through ``Store.write`` (what the SDK's writer does) for ``--records``
   steps, with the ledger on and off, for the ledger's share of the write path.
3. Inclusion-proof latency at the full size: random leaves, proof read from the store
   (O(log n) stored hashes) and verified; pymerkle ``prove_inclusion`` on its tree.
4. Full verification: ``flightlog.ledger.verify.verify`` (every leaf and interior hash,
   checkpoints; records too for the store of step 2); pymerkle has no whole-log verifier, so
   its row is the time to recompute the root from its stored leaves (``get_state``, no
   cache).

The two trees' roots are compared: both implement RFC 9162, so they must agree.

Run: ``python bench/ledger.py [--n 1000000] [--records 200000] [--batch 1000]``
(needs ``pip install -e '.[bench]'`` for pymerkle).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path


def _steps(run_id: str, start: int, count: int, t0: int) -> list:
    from flightlog.model import Step

    return [
        Step(
            run_id=run_id,
            id=f"{i:016x}",
            name="search_policy",
            kind="tool",
            index=i + 1,
            started_ns=t0 + i,
            ended_ns=t0 + i + 1000,
            agent="retriever",
            owner="search-team",
            input_hash=f"{i:064x}",
            output_hash=f"{i + 1:064x}",
            model="gpt-4o",
            input_tokens=120,
            output_tokens=40,
            cost=0.00042,
            attributes={"temperature": 0.2, "k": 5},
        )
        for i in range(start, start + count)
    ]


def _payloads(steps: list) -> list:
    """Real content-addressed payloads for the steps' input and output hashes."""
    import hashlib

    from flightlog.model import Payload

    out = []
    for s in steps:
        for which in ("input", "output"):
            data = f'{{"{which}":"{s.id}"}}'.encode()
            h = hashlib.sha256(data).hexdigest()
            setattr(s, f"{which}_hash", h)
            out.append(Payload(h, data, len(data)))
    return out


def bench_appends(
    path: Path, n: int, batch: int
) -> tuple[float, float, float, float, list[bytes], object]:
    """(seconds encoding records, seconds appending durably, the same two in CPU seconds of
    this thread, entries, (store, ledger))."""
    os.environ["FLIGHTLOG_LEDGER_CHECKPOINT_EVERY"] = str(10**9)
    from flightlog.app import open_store
    from flightlog.ledger import attach
    from flightlog.ledger.entry import step_data

    store = open_store(f"sqlite:///{path}")
    ledger = attach(store)
    # What the write hook does for stored steps (``encode_steps``; ``encode_known`` or
    # ``encode`` record by record in versions before it, so that one bench compares them).
    enc = getattr(ledger.encoder, "encode_known", ledger.encoder.encode)
    enc_steps = getattr(ledger.encoder, "encode_steps", None)
    run_id = "ab" * 16
    t0 = time.time_ns()
    encoding = appending = enc_cpu = app_cpu = 0.0
    entries: list[bytes] = []
    cpu = time.thread_time
    for start in range(0, n, batch):
        steps = _steps(run_id, start, min(batch, n - start), t0)  # record making: not timed
        t, c = time.perf_counter(), cpu()
        if enc_steps is not None:
            encoded = enc_steps(steps, t0)
        else:
            encoded = [enc("step", f"{run_id}/{s.id}", run_id, step_data(s), t0) for s in steps]
        t1, c1 = time.perf_counter(), cpu()
        with store.transaction() as tx:
            ledger.append(tx, encoded)
        t2, c2 = time.perf_counter(), cpu()
        encoding += t1 - t
        appending += t2 - t1
        enc_cpu += c1 - c
        app_cpu += c2 - c1
        entries.extend(e.entry for e in encoded)
    return encoding, appending, enc_cpu, app_cpu, entries, (store, ledger)


def bench_pymerkle_appends(path: Path, entries: list[bytes], batch: int) -> tuple[float, object]:
    from pymerkle import SqliteTree

    tree = SqliteTree(str(path))
    t = time.perf_counter()
    tree.append_entries(entries, chunksize=batch)
    return time.perf_counter() - t, tree


def bench_store_writes(path: Path, n: int, batch: int, ledger_on: bool) -> tuple[float, object]:
    os.environ["FLIGHTLOG_LEDGER"] = "on" if ledger_on else "off"
    try:
        from flightlog.app import open_store
        from flightlog.model import Batch, Run

        store = open_store(f"sqlite:///{path}")
    finally:
        os.environ.pop("FLIGHTLOG_LEDGER", None)
    run_id = "cd" * 16
    t0 = time.time_ns()
    store.write(Batch(runs=[Run(id=run_id, workflow="bench", started_ns=t0)]))
    elapsed = 0.0
    for start in range(0, n, batch):
        steps = _steps(run_id, start, min(batch, n - start), t0)
        # The payloads the steps refer to, as the SDK writes them with the steps ('audit
        # verify' reports a referenced payload that is missing as deleted).
        b = Batch(steps=steps, payloads=_payloads(steps))
        t = time.perf_counter()
        store.write(b)
        elapsed += time.perf_counter() - t
    return elapsed, store


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="entries in the log")
    ap.add_argument("--records", type=int, default=200_000, help="steps written via Store.write")
    ap.add_argument("--batch", type=int, default=1000, help="entries per durable transaction")
    ap.add_argument("--proofs", type=int, default=2000, help="inclusion proofs to time")
    args = ap.parse_args()
    from flightlog.ledger import rfc9162
    from flightlog.ledger.verify import verify

    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as d:
        tmp = Path(d)
        n = args.n
        print(f"appending {n} entries (batches of {args.batch}) ...", flush=True)
        enc_s, app_s, enc_c, app_c, entries, (store, ledger) = bench_appends(
            tmp / "ledger.db", n, args.batch
        )
        pm_s, tree = bench_pymerkle_appends(tmp / "pymerkle.db", entries, args.batch)
        rows.append(
            (
                f"durable appends of the same entry bytes, {n}",
                f"{n / app_s:,.0f}/s",
                f"{n / pm_s:,.0f}/s",
                f"{pm_s / app_s:.2f}x",
            )
        )
        rows.append(
            (
                "  + encoding step records (RFC 8785, commitments)",
                f"{enc_s / n * 1e6:.1f} µs/entry",
                "-",
                "-",
            )
        )
        ours_s = enc_s + app_s
        rows.append(
            (
                f"records encoded and appended durably, {n}",
                f"{n / ours_s:,.0f}/s",
                f"{n / pm_s:,.0f}/s (bytes)",
                f"{pm_s / ours_s:.2f}x",
            )
        )
        # CPU of this thread: what the figures above cost where the machine is shared (wall
        # time counts other processes' turns on the cores, and the waits for fsync).
        rows.append(
            (
                "  CPU µs per record: encoding + appending",
                f"{enc_c / n * 1e6:.1f} + {app_c / n * 1e6:.1f}",
                "-",
                "-",
            )
        )
        rows.append(
            (
                "  records encoded and appended per CPU second",
                f"{n / (enc_c + app_c):,.0f}/s",
                "-",
                "-",
            )
        )

        with store.read() as tx:
            size, root = ledger.head(tx)
        pm_root = tree.get_root()  # type: ignore[attr-defined]
        assert size == n and pm_root == root, "pymerkle and flightlog disagree on the root"
        print(f"roots agree: {root.hex()[:16]}… at size {n}", flush=True)

        rng = random.Random(7)
        idx = [rng.randrange(n) for _ in range(args.proofs)]
        ours: list[float] = []
        with store.read() as tx:
            for i in idx:
                t = time.perf_counter()
                proof = ledger.inclusion_proof(tx, i, n)
                leaf = ledger.entry(tx, i)[3]
                rfc9162.verify_inclusion(i, n, leaf, proof, root)
                ours.append(time.perf_counter() - t)
        theirs: list[float] = []
        for i in idx[: max(50, args.proofs // 10)]:
            t = time.perf_counter()
            tree.prove_inclusion(i + 1, n)  # type: ignore[attr-defined]
            theirs.append(time.perf_counter() - t)
        rows.append(
            (
                f"inclusion proof at {n} (median)",
                f"{statistics.median(ours) * 1e6:,.0f} µs",
                f"{statistics.median(theirs) * 1e6:,.0f} µs",
                f"{statistics.median(theirs) / statistics.median(ours):.1f}x",
            )
        )
        rows.append(
            (
                f"inclusion proof at {n} (p99)",
                f"{pct(ours, 0.99) * 1e6:,.0f} µs",
                f"{pct(theirs, 0.99) * 1e6:,.0f} µs",
                f"{pct(theirs, 0.99) / pct(ours, 0.99):.1f}x",
            )
        )

        cp = ledger.checkpoint()
        t = time.perf_counter()
        report = verify(ledger, check_records=False)
        ver_s = time.perf_counter() - t
        assert report.ok, report.summary()
        tree.cache_clear()  # type: ignore[attr-defined]
        t = time.perf_counter()
        tree.get_root(n)  # type: ignore[attr-defined]
        pm_ver = time.perf_counter() - t
        rows.append(
            (
                f"full verify, {n} entries",
                f"{ver_s:.1f} s ({n / ver_s:,.0f}/s)",
                f"{pm_ver:.1f} s (root only)",
                f"{pm_ver / ver_s:.2f}x",
            )
        )
        store.close()
        tree.close()  # type: ignore[attr-defined]
        del cp, entries

        r = args.records
        print(f"writing {r} steps through Store.write, ledger on and off ...", flush=True)
        on_s, st_on = bench_store_writes(tmp / "on.db", r, args.batch, True)
        off_s, st_off = bench_store_writes(tmp / "off.db", r, args.batch, False)
        rows.append(
            (
                f"Store.write steps, ledger on/off, {r}",
                f"{r / on_s:,.0f}/s",
                f"{r / off_s:,.0f}/s (off)",
                f"+{(on_s - off_s) / r * 1e6:.1f} µs/step",
            )
        )
        from flightlog.ledger import attach

        t = time.perf_counter()
        rep = verify(attach(st_on))  # type: ignore[arg-type]
        full_s = time.perf_counter() - t
        assert rep.ok, rep.summary()
        rows.append(
            (f"full verify with records, {r}", f"{full_s:.1f} s ({r / full_s:,.0f}/s)", "-", "-")
        )
        st_on.close()  # type: ignore[attr-defined]
        st_off.close()  # type: ignore[attr-defined]

    w = max(len(x[0]) for x in rows)
    print()
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'measure':<{w}}  {'flightlog':>24}  {'pymerkle':>24}  {'ratio':>16}")
    for name, a, b, ratio in rows:
        print(f"{name:<{w}}  {a:>24}  {b:>24}  {ratio:>16}")


if __name__ == "__main__":
    main()
