"""Store behaviour common to both dialects (``db_url`` is SQLite, then PostgreSQL): queries,
idempotence, migrations, ids, transactions, payload bytes, portable SQL through ``Tx``."""

from __future__ import annotations

import pytest

import flightlog
from flightlog.app import open_store
from flightlog.model import Batch, Edge, Finding, Payload, Run, Step
from flightlog.store import Migration, RunQuery


def _runs(n: int) -> Batch:
    b = Batch()
    for i in range(n):
        b.runs.append(
            Run(
                id=f"{i:032x}",
                workflow="a" if i % 2 else "b",
                started_ns=1000 + i,
                status="failed" if i % 3 == 0 else "succeeded",
                ended_ns=2000 + i,
            )
        )
    return b


def test_queries_by_workflow_status_and_time(db_url: str) -> None:
    s = open_store(db_url)
    s.write(_runs(30))
    assert s.count_runs() == 30
    assert {r.workflow for r in s.list_runs(RunQuery(workflow="a"))} == {"a"}
    failed = s.list_runs(RunQuery(status="failed", limit=100))
    assert len(failed) == 10 and all(r.status == "failed" for r in failed)
    recent = s.list_runs(RunQuery(since_ns=1025))
    assert [r.started_ns for r in recent] == [1029, 1028, 1027, 1026, 1025]
    page = s.list_runs(RunQuery(limit=5, offset=5))
    assert [r.started_ns for r in page] == [1024, 1023, 1022, 1021, 1020]
    assert s.workflows() == ["a", "b"]


def test_writes_are_idempotent_and_end_wins_over_start(db_url: str) -> None:
    s = open_store(db_url)
    start = Run(id="a" * 32, workflow="w", started_ns=1, status="running", input_hash="h1")
    end = Run(id="a" * 32, workflow="w", started_ns=1, status="failed", ended_ns=9, reason="x")
    step = Step(run_id="a" * 32, id="b" * 16, name="s", kind="tool", index=1, started_ns=2)
    f = Finding(id="f1", run_id="a" * 32, detector="d", severity="error", message="m")
    e = Edge("a" * 32, "b" * 16, "c" * 16)
    s.write(Batch(runs=[end], steps=[step], findings=[f], edges=[e]))
    s.write(Batch(runs=[start], steps=[step], findings=[f], edges=[e]))  # late start, redelivery
    rec = s.get_record("a" * 32)
    assert rec.run.status == "failed" and rec.run.ended_ns == 9 and rec.run.input_hash == "h1"
    assert len(rec.steps) == 1 and len(rec.findings) == 1 and len(rec.edges) == 1


def test_resolve_run_id_prefix(db_url: str) -> None:
    s = open_store(db_url)
    s.write(
        Batch(
            runs=[
                Run(id="ab" + "0" * 30, workflow="w", started_ns=1),
                Run(id="ac" + "0" * 30, workflow="w", started_ns=2),
            ]
        )
    )
    assert s.resolve_run_id("ab") == "ab" + "0" * 30
    with pytest.raises(flightlog.NotFoundError, match="ambiguous"):
        s.resolve_run_id("a")
    with pytest.raises(flightlog.NotFoundError, match="no run"):
        s.resolve_run_id("ff")
    with pytest.raises(flightlog.NotFoundError, match="not a run id"):
        s.resolve_run_id("xyz")
    with pytest.raises(flightlog.NotFoundError):
        s.get_record("ff" * 16)


def test_component_migrations_apply_once_in_order(db_url: str) -> None:
    s = open_store(db_url)
    migs = [
        Migration(1, ("CREATE TABLE extra (k TEXT PRIMARY KEY)",)),
        Migration(2, ("ALTER TABLE extra ADD COLUMN v TEXT",)),
    ]
    s.migrate("extra", migs[:1])
    assert s.schema_version("extra") == 1
    s.migrate("extra", migs)
    s.migrate("extra", migs)  # again: nothing to do
    assert s.schema_version("extra") == 2 and s.schema_version("core") >= 1
    with s.transaction() as tx:
        tx.execute("INSERT INTO extra (k, v) VALUES (?, ?)", ("a", "b"))
    s.close()
    s2 = open_store(db_url)  # reopening migrates nothing and keeps data
    with s2.read() as tx:
        assert tx.fetchall("SELECT k, v FROM extra") == [("a", "b")]


def test_failed_transaction_rolls_back(db_url: str) -> None:
    s = open_store(db_url)
    with pytest.raises(RuntimeError), s.transaction() as tx:
        tx.execute(
            "INSERT INTO runs (id, workflow, status, started_ns, source, attributes) "
            "VALUES ('x', 'w', 'running', 1, 'sdk', '{}')"
        )
        raise RuntimeError("abort")
    assert s.get_run("x") is None


def test_write_hooks_run_inside_the_transaction(db_url: str) -> None:
    s = open_store(db_url)
    seen: list[int] = []

    def hook(tx, batch):  # type: ignore[no-untyped-def]
        seen.append(len(batch.runs))
        raise RuntimeError("hook failed")

    s.add_write_hook(hook)
    with pytest.raises(RuntimeError):
        s.write(_runs(2))
    assert seen == [2] and s.count_runs() == 0  # the hook's failure rolled the records back


def test_payloads_come_back_as_bytes(db_url: str) -> None:
    s = open_store(db_url)
    blob = bytes(range(256)) + b'{"k": "\\u0000"}'
    s.write(Batch(payloads=[Payload(hash="h" * 64, data=blob, size=len(blob))]))
    got = s.get_payloads(["h" * 64, "missing"])
    assert got == {"h" * 64: blob} and type(got["h" * 64]) is bytes


def test_component_sql_is_portable_through_tx(db_url: str) -> None:
    """What capabilities write: BLOB/INTEGER/BOOLEAN/REAL columns, ``?`` and ``%`` inside
    string literals, bools as 0/1, an upsert, a ``?`` list."""
    s = open_store(db_url)
    s.migrate(
        "comp",
        [
            Migration(
                1,
                (
                    "CREATE TABLE comp_items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                    "digest BLOB, ok BOOLEAN, ratio REAL, big INTEGER)",
                ),
            )
        ],
    )
    with s.transaction() as tx:
        tx.executemany(
            "INSERT INTO comp_items (id, name, digest, ok, ratio, big) VALUES (?, ?, ?, ?, ?, ?)",
            [(1, "what?", b"\x00\xff", True, 0.1, 2**62), (2, "50% off", None, False, 1.5, -1)],
        )
        tx.execute(
            "INSERT INTO comp_items (id, name) VALUES (?, ?) "
            "ON CONFLICT (id) DO UPDATE SET name = excluded.name || '?'",
            (2, "100%"),
        )
    with s.read() as tx:
        rows = tx.fetchall("SELECT id, name, digest, ok, ratio, big FROM comp_items ORDER BY id")
        quoted = tx.fetchone(
            "SELECT COUNT(*) FROM comp_items WHERE name LIKE '%?' OR name = 'it''s ? here'"
        )
        in_list = tx.fetchall(
            "SELECT id FROM comp_items WHERE id IN (?, ?) AND ok = ?", (1, 2, True)
        )
    assert rows[0] == (1, "what?", b"\x00\xff", 1, 0.1, 2**62) and type(rows[0][2]) is bytes
    assert rows[1][:2] == (2, "100%?") and rows[1][3] == 0 and rows[1][5] == -1
    assert quoted == (2,)  # 'what?' and '100%?' end in a literal question mark
    assert in_list == [(1,)]


def test_threads_write_concurrently_without_loss(db_url: str) -> None:
    import threading

    s = open_store(db_url)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(10):
                rid = f"{t:02x}{i:030x}"
                s.write(
                    Batch(
                        runs=[Run(id=rid, workflow=f"w{t}", started_ns=i + 1, status="succeeded")],
                        steps=[
                            Step(
                                run_id=rid,
                                id=f"{j:016x}",
                                name="s",
                                kind="tool",
                                index=j + 1,
                                started_ns=j,
                            )
                            for j in range(3)
                        ],
                    )
                )
                assert s.get_run(rid) is not None
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert s.count_runs() == 60
    with s.read() as tx:
        assert tx.fetchone("SELECT COUNT(*) FROM steps") == (180,)
    s.close()


def test_nul_characters_in_text_neither_fail_a_write_nor_a_query(db_url: str) -> None:
    """SQLite keeps U+0000 in text; PostgreSQL cannot and stores U+FFFD instead."""
    s = open_store(db_url)
    s.write(
        Batch(
            runs=[
                Run(
                    id="a" * 32,
                    workflow="w\x00x",
                    started_ns=1,
                    status="failed",
                    reason="bad\x00byte",
                    owner="o",
                )
            ]
        )
    )
    run = s.get_run("a" * 32)
    assert run is not None and run.reason in ("bad\x00byte", "bad\ufffdbyte")
    assert s.list_runs(RunQuery(owner="\x00")) == []
    assert [r.id for r in s.list_runs(RunQuery(workflow="w\x00x"))] == ["a" * 32]
