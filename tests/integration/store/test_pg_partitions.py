"""PostgreSQL: runs and steps partitioned by time; retention drops whole partitions.

On the real server (``pg_url``): partitions appear for the buckets written, retention drops
the old ones (checked in ``pg_inherits``) and deletes row by row only around the cut-off,
the rows it keeps are untouched, the audit log verifies, and an existing unpartitioned
store is converted with every row kept.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from flightlog.ledger import attach
from flightlog.ledger.retention import prune
from flightlog.model import Batch, Edge, Finding, Run, Step
from flightlog.store import _pgpart
from tests.conftest import run_cli

DAY = 86_400 * 10**9


def step(rid: str, sid: str, start: int, name: str = "s", index: int = 1) -> Step:
    return Step(run_id=rid, id=sid, name=name, kind="tool", index=index, started_ns=start)


def _run(rid: str, start: int, steps: int = 3) -> Batch:
    return Batch(
        runs=[Run(id=rid, workflow="w", started_ns=start, status="succeeded", ended_ns=start + 9)],
        steps=[step(rid, f"{i + 1:016x}", start + i, f"s{i}", i + 1) for i in range(steps)],
        edges=[Edge(rid, f"{1:016x}", f"{2:016x}", "data", "identity")],
        findings=[
            Finding(
                id=f"f{rid[:8]}",
                run_id=rid,
                step_id=None,
                detector="d",
                severity="low",
                message="m",
                evidence={},
                created_ns=start,
            )
        ],
    )


def _partitions(store: Any, table: str) -> set[str]:
    with store.read() as tx:
        return {
            str(r[0])
            for r in tx.fetchall(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = to_regclass(?)",
                (table,),
            )
        }


def _records(store: Any, ids: list[str]) -> dict[str, Any]:
    return {rid: store.get_record(rid) for rid in ids if store.get_run(rid) is not None}


@pytest.fixture
def weekly(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv(_pgpart.ENV, "7")
    for var in ("FLIGHTLOG_LEDGER", "FLIGHTLOG_LEDGER_KEY", "FLIGHTLOG_LEDGER_RETENTION_DAYS"):
        monkeypatch.delenv(var, raising=False)
    return 7


def test_retention_drops_old_partitions_and_keeps_the_rest(
    pg_url: str, weekly: int, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flightlog.app import open_store

    monkeypatch.setenv("FLIGHTLOG_LEDGER_KEY", str(tmp_path / "ledger.key"))
    now = time.time_ns()
    # The cut-off in the middle of a bucket: runs on both sides of it share that bucket.
    mid = _pgpart.bucket(now - 250 * DAY, weekly, now) + 3
    cutoff = mid * DAY + DAY // 2
    starts = {
        "a" * 32: now - 400 * DAY,
        "b" * 32: now - 300 * DAY,
        "c" * 32: now - 260 * DAY,
        "d" * 32: cutoff - 3600 * 10**9,  # straddling bucket, before the cut-off
        "e" * 32: cutoff + 3600 * 10**9,  # straddling bucket, after it
        "f" * 32: now - 2 * DAY,
        "0" * 32: now - 100 * DAY,
    }
    store = open_store(pg_url)
    try:
        for rid, start in starts.items():
            store.write(_run(rid, start))
        # Steps whose run never arrives, in an old bucket: dropped with their partition.
        store.write(Batch(steps=[step("9" * 32, "1" * 16, now - 390 * DAY, "x", 1)]))
        days = {rid: _pgpart.bucket(ns, weekly, now) for rid, ns in starts.items()}
        runs_parts = _partitions(store, "runs")
        steps_parts = _partitions(store, "steps")
        for day in days.values():
            assert _pgpart.name("runs", day) in runs_parts
            assert _pgpart.name("steps", day) in steps_parts
        for day in _pgpart.ahead(weekly, now):  # made ahead of time
            assert _pgpart.name("runs", day) in runs_parts
        with store.read() as tx:
            placed = dict(tx.fetchall("SELECT id, part_day FROM runs"))
        assert placed == days

        kept = ["e" * 32, "f" * 32, "0" * 32]
        before = _records(store, kept)
        with store.read() as tx:
            kept_rows = tx.fetchall("SELECT * FROM runs WHERE id = ANY(?) ORDER BY id", (kept,))
            kept_steps = tx.fetchall(
                "SELECT * FROM steps WHERE run_id = ANY(?) ORDER BY run_id, id", (kept,)
            )

        ledger = attach(store)
        done = prune(ledger, cutoff)
        assert done.runs == 4  # a, b, c dropped with their partitions; d deleted as a row

        runs_after = _partitions(store, "runs")
        steps_after = _partitions(store, "steps")
        for rid in ("a" * 32, "b" * 32, "c" * 32):
            assert _pgpart.name("runs", days[rid]) not in runs_after
            assert _pgpart.name("steps", days[rid]) not in steps_after
        assert _pgpart.name("steps", _pgpart.bucket(now - 390 * DAY, weekly, now)) not in (
            steps_after
        )
        straddling = _pgpart.name("runs", days["d" * 32])
        assert straddling in runs_after  # straddles the cut-off: kept, old rows deleted
        assert store.get_run("d" * 32) is None and store.get_steps("d" * 32) == []
        assert store.get_edges("a" * 32) == [] and store.get_findings("a" * 32) == []
        with store.read() as tx:
            for gone in ("9" * 32, "d" * 32):  # dropped with a partition; deleted as a row
                assert tx.fetchone("SELECT count(*) FROM run_days WHERE run_id = ?", (gone,)) == (
                    0,
                )
            assert (
                tx.fetchall("SELECT * FROM runs WHERE id = ANY(?) ORDER BY id", (kept,))
                == kept_rows
            )
            assert (
                tx.fetchall(
                    "SELECT * FROM steps WHERE run_id = ANY(?) ORDER BY run_id, id", (kept,)
                )
                == kept_steps
            )
        assert _records(store, kept) == before
        # Writing goes on, also for a run whose partition was dropped (recorded anew).
        store.write(_run("a" * 32, now - 1000))
        assert len(store.get_steps("a" * 32)) == 3
    finally:
        store.close()
    verified = run_cli("audit", "verify", "--db", pg_url)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_runs_partition_never_changes(pg_url: str, weekly: int) -> None:
    from flightlog.store import open_store

    now = time.time_ns()
    rid = "ab" * 16
    store = open_store(pg_url)
    try:
        # Steps first (a stand-in run), then the run with an earlier start in another
        # bucket, then a step re-sent with a start in yet another bucket.
        store.write(Batch(steps=[step(rid, "1" * 16, now - 20 * DAY, "a", 1)]))
        store.write(Batch(runs=[Run(id=rid, workflow="w", started_ns=now - 40 * DAY)]))
        store.write(Batch(steps=[step(rid, "1" * 16, now - 60 * DAY, "a", 1)]))
        store.write(Batch(steps=[step(rid, "2" * 16, now, "b", 2)]))
        with store.read() as tx:
            rows = tx.fetchall("SELECT part_day FROM steps WHERE run_id = ? ORDER BY id", (rid,))
            run_rows = tx.fetchall("SELECT part_day, started_ns FROM runs WHERE id = ?", (rid,))
        first = _pgpart.bucket(now - 20 * DAY, weekly, now)
        assert rows == [(first,), (first,)]
        assert run_rows == [(first, now - 40 * DAY)]
        assert [s.id for s in store.get_steps(rid)] == ["1" * 16, "2" * 16]
    finally:
        store.close()


def test_an_unpartitioned_store_is_converted_with_every_row(
    pg_url: str, weekly: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flightlog.store import open_store
    from flightlog.store.postgres import PostgresStore

    now = time.time_ns()
    ids = [f"{n:032x}" for n in range(1, 6)]
    with monkeypatch.context() as m:  # a store as the previous release wrote it
        m.setattr(PostgresStore, "_partition", lambda self: None)
        old = open_store(pg_url)
        for n, rid in enumerate(ids):
            old.write(_run(rid, now - n * 30 * DAY))
        old.write(Batch(steps=[step("f" * 32, "1" * 16, now - 45 * DAY, "x", 1)]))
        before = _records(old, ids)
        orphan = old.get_steps("f" * 32)
        with old.read() as tx:
            assert _partitions(old, "runs") == set()
            indexes = {
                r[0]
                for r in tx.fetchall(
                    "SELECT indexname FROM pg_indexes WHERE tablename IN ('runs', 'steps')"
                )
            }
        old.close()

    store = open_store(pg_url)
    try:
        assert _records(store, ids) == before
        assert store.get_steps("f" * 32) == orphan
        parts = _partitions(store, "runs")
        for n in range(5):
            assert _pgpart.name("runs", _pgpart.bucket(now - n * 30 * DAY, weekly, now)) in parts
        with store.read() as tx:
            assert tx.fetchone("SELECT to_regclass('runs_unpartitioned')") == (None,)
    finally:
        store.close()
    # Every secondary index is back, on the partitioned tables.
    store = open_store(pg_url)
    try:
        with store.read() as tx:
            after = {
                r[0]
                for r in tx.fetchall(
                    "SELECT indexname FROM pg_indexes WHERE tablename IN ('runs', 'steps')"
                )
            }
            kinds = dict(
                tx.fetchall(
                    "SELECT relname, relkind FROM pg_class WHERE relname IN ('runs', 'steps')"
                )
            )
        assert indexes - {"runs_pkey", "steps_pkey"} <= after
        assert kinds == {"runs": "p", "steps": "p"}
        assert store.schema_version("partitions") == 1
    finally:
        store.close()


def test_late_data_goes_to_the_default_partition_rather_than_wait(
    pg_url: str, weekly: int, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch whose bucket has no partition does not wait for the parent table's lock
    (held by another open write transaction): its rows go to the default partitions, and
    retention deletes them row by row."""
    from flightlog.app import open_store

    monkeypatch.setenv("FLIGHTLOG_LEDGER_KEY", str(tmp_path / "ledger.key"))
    now = time.time_ns()
    a, b = open_store(pg_url), open_store(pg_url)
    try:
        with a.transaction() as tx:  # a writer's lock on runs, held until it ends
            tx.execute("LOCK TABLE runs IN ROW EXCLUSIVE MODE")
            b.write(_run("d" * 32, now - 300 * DAY))
        with b.read() as tx:
            where = tx.fetchall(
                "SELECT tableoid::regclass::text FROM runs WHERE id = ?", ("d" * 32,)
            )
        assert where == [("runs_default",)]
        assert len(b.get_steps("d" * 32)) == 3
        done = prune(attach(b), now - 200 * DAY)
        assert done.runs == 1 and b.get_run("d" * 32) is None and b.get_steps("d" * 32) == []
    finally:
        a.close()
        b.close()
    verified = run_cli("audit", "verify", "--db", pg_url)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_bucket_with_rows_in_the_default_partition_does_not_stop_the_others(
    pg_url: str, weekly: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each bucket's partitions are made in their own transaction: one that PostgreSQL
    refuses (its rows sit in the default partitions) leaves the others made, and is tried
    again later rather than given up for the life of the process."""
    from flightlog.store import open_store, postgres

    monkeypatch.setattr(postgres, "PARTITION_RETRY_S", 0.0)  # retry at the next look
    now = time.time_ns()
    held = _pgpart.bucket(now - 300 * DAY, weekly, now)
    free = _pgpart.bucket(now - 200 * DAY, weekly, now)
    store = open_store(pg_url)
    try:
        store.write(_run("a" * 32, now - 300 * DAY))
        with store.transaction() as tx:  # the bucket's rows moved to the default partitions
            for table in _pgpart.TABLES:
                part = _pgpart.name(table, held)
                tx.execute(f"ALTER TABLE {table} DETACH PARTITION {part}")
                tx.execute(f"INSERT INTO {table} SELECT * FROM {part}")
                tx.execute(f"DROP TABLE {part}")
    finally:
        store.close()
    store = open_store(pg_url)
    try:
        store._ensure_partitions({held, free})
        for table in _pgpart.TABLES:
            assert _pgpart.name(table, free) in _partitions(store, table)
            assert _pgpart.name(table, held) not in _partitions(store, table)
        assert len(store.get_steps("a" * 32)) == 3
        with store.transaction() as tx:  # the default partitions emptied of that bucket
            for table in _pgpart.TABLES:
                tx.execute(f"DELETE FROM {table}_default")
        store._ensure_partitions({held})
        for table in _pgpart.TABLES:
            assert _pgpart.name(table, held) in _partitions(store, table)
    finally:
        store.close()


def test_retention_locks_the_tables_last_and_lists_a_run_written_meanwhile(
    pg_url: str, weekly: int
) -> None:
    """Retention does its row work without the tables' ACCESS EXCLUSIVE lock (readers and
    writers go on), and takes it just before it commits; a run first written into a
    partition being dropped, committed before that lock, is listed with the rest (its
    edges and findings deleted) after the transaction starts over."""
    from flightlog.store import core, open_store

    now = time.time_ns()
    old = now - 300 * DAY
    cutoff = now - 200 * DAY
    store, other = open_store(pg_url), open_store(pg_url)
    try:
        store.write(_run("a" * 32, old))
        store.write(_run("b" * 32, now - 250 * DAY + 1))  # straddles nothing: own bucket
        part = _pgpart.name("runs", _pgpart.bucket(old, weekly, now))
        attempts: list[list[str]] = []

        def apply(tx: Any) -> list[str]:
            ids, _ = core.delete_runs_started_before(tx, cutoff)
            attempts.append(ids)
            held = tx.fetchone(
                "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() "
                "AND mode = 'AccessExclusiveLock' AND relation IN "
                "('runs'::regclass, 'steps'::regclass)"
            )
            assert held == (0,)  # not yet: the row work comes first
            if len(attempts) == 1:  # another writer's new run in the doomed bucket
                other.write(_run("c" * 32, old + 5))
                with other.read() as rtx:  # and readers are not held up
                    assert rtx.fetchone("SELECT count(*) FROM runs")[0] == 3
            return ids

        listed = store.run_write(apply)
        assert attempts[0] == ["a" * 32, "b" * 32]
        assert listed == ["a" * 32, "b" * 32, "c" * 32]
        assert part not in _partitions(store, "runs")
        for rid in listed:
            assert store.get_run(rid) is None
            assert store.get_edges(rid) == [] and store.get_findings(rid) == []
        with store.read() as tx:
            assert tx.fetchone("SELECT count(*) FROM run_days") == (0,)
    finally:
        store.close()
        other.close()


def test_a_second_writer_of_a_new_run_does_not_wait_for_the_first_writes_day(
    pg_url: str, weekly: int
) -> None:
    """The first writer of a new run records its partition day in a short transaction of
    its own before its write: a second writer of other steps of the same run (another
    server) gets past the ``run_days`` row while the first write is still open, and waits
    for it only at the run itself (the lock under which the run's order and outcome are
    derived). Both end in one partition; a write that then fails leaves the day recorded,
    and the run's next write uses it."""
    import threading

    from flightlog.store import open_store
    from flightlog.store.base import Tx

    now = time.time_ns()
    rid = "cd" * 16
    one, two = open_store(pg_url), open_store(pg_url)
    seen: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: two.write(Batch(steps=[step(rid, "2" * 16, now)]), reorder=[rid])
    )

    def hold(tx: Tx, batch: Batch) -> None:
        if batch.steps and batch.steps[0].id == "1" * 16 and not thread.is_alive():
            thread.start()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and "query" not in seen:
                with one.read() as r:
                    row = r.fetchone(
                        "SELECT query FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock'"
                    )
                if row is not None:
                    seen["query"] = row[0]
                time.sleep(0.01)

    one.add_write_hook(hold)
    try:
        one.write(Batch(steps=[step(rid, "1" * 16, now - 1000)]), reorder=[rid])
        thread.join(60)
        assert "query" in seen, "the second writer never waited for the first"
        assert "run_days" not in seen["query"], seen["query"]
        with one.read() as tx:
            days = tx.fetchall("SELECT DISTINCT part_day FROM steps WHERE run_id = ?", (rid,))
            recorded = tx.fetchall("SELECT part_day FROM run_days WHERE run_id = ?", (rid,))
            (n,) = tx.fetchone("SELECT COUNT(*) FROM steps WHERE run_id = ?", (rid,)) or (0,)
        assert n == 2
        assert days == recorded == [(_pgpart.bucket(now - 1000, weekly, now),)]

        # A write that fails after its day was recorded: the day stays, the next write of
        # the run (with an earlier start, in another bucket) uses it.
        other = "ef" * 16

        def fail(tx: Tx, batch: Batch) -> None:
            if batch.steps and batch.steps[0].run_id == other:
                raise RuntimeError("the write fails")

        two.add_write_hook(fail)
        with pytest.raises(Exception, match="the write fails"):
            two.write(Batch(steps=[step(other, "1" * 16, now)]))
        one.write(Batch(steps=[step(other, "2" * 16, now - 30 * DAY)]))
        with one.read() as tx:
            rows = tx.fetchall("SELECT id, part_day FROM steps WHERE run_id = ?", (other,))
        assert rows == [("2" * 16, _pgpart.bucket(now, weekly, now))]
    finally:
        one.close()
        two.close()
