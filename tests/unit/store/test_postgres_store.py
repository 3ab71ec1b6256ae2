"""What only the PostgreSQL store does: SQL rewriting, connection errors, durability
settings, read-only opening, named locks and concurrent writers, dropped and forked
connections.
(Shared behaviour runs on both dialects in ``test_store.py``.)"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import pytest

import flightlog
from flightlog.app import open_store
from flightlog.model import Batch, Run, Step
from flightlog.store import Migration
from flightlog.store._pgsql import columnar, columnar_update, to_postgres_ddl, to_pyformat

# -- rewriting (pure functions) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "SELECT a FROM t WHERE a = ? AND b IN (?, ?)",
            "SELECT a FROM t WHERE a = %s AND b IN (%s, %s)",
        ),
        ("SELECT '?' , ?", "SELECT '?' , %s"),
        ("SELECT 'it''s ?', ? -- why?\n, ?", "SELECT 'it''s ?', %s -- why?\n, %s"),
        ('SELECT "odd?col" FROM t WHERE x = ?', 'SELECT "odd?col" FROM t WHERE x = %s'),
        (
            "SELECT x /* a ? b */ FROM t WHERE y LIKE 'a%' AND z = ?",
            "SELECT x /* a ? b */ FROM t WHERE y LIKE 'a%%' AND z = %s",
        ),
        ("SELECT 10 % 3, ?", "SELECT 10 %% 3, %s"),
        ("SELECT 1", "SELECT 1"),
        ("SELECT 'unterminated ?", "SELECT 'unterminated ?"),
    ],
)
def test_placeholders_are_rewritten_outside_quotes_and_comments(sql: str, expected: str) -> None:
    assert to_pyformat(sql) == expected


def test_ddl_types_are_mapped_as_whole_words_outside_quotes() -> None:
    ddl = (
        "CREATE TABLE t (id INTEGER PRIMARY KEY, blob_size integer, data BLOB NOT NULL, "
        "r REAL, f Boolean, note TEXT DEFAULT 'INTEGER BLOB', \"BLOB\" TEXT)"
    )
    assert to_postgres_ddl(ddl) == (
        "CREATE TABLE t (id BIGINT PRIMARY KEY, blob_size BIGINT, data BYTEA NOT NULL, "
        "r DOUBLE PRECISION, f BIGINT, note TEXT DEFAULT 'INTEGER BLOB', \"BLOB\" TEXT)"
    )


# -- connection errors -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_is_a_clear_store_error() -> None:
    port = _free_port()
    with pytest.raises(
        flightlog.StoreError,
        match=rf"cannot reach PostgreSQL .*127\.0\.0\.1:{port}"
        r".*server running",
    ):
        open_store(f"postgresql://postgres:s3cret@127.0.0.1:{port}/flightlog")


def test_a_url_without_user_or_database_names_libpqs_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """libpq connects as the login name, to the database of that name: errors name those,
    not a placeholder."""
    import getpass

    monkeypatch.delenv("PGUSER", raising=False)
    monkeypatch.delenv("PGDATABASE", raising=False)
    port = _free_port()
    me = getpass.getuser()
    with pytest.raises(flightlog.StoreError) as info:
        open_store(f"postgresql://127.0.0.1:{port}")
    assert f"database '{me}' on 127.0.0.1:{port} (user {me})" in str(info.value)


def test_password_never_appears_in_errors() -> None:
    port = _free_port()
    with pytest.raises(flightlog.StoreError) as info:
        open_store(f"postgresql://postgres:s3cret@127.0.0.1:{port}/flightlog")
    assert "s3cret" not in str(info.value) and "***" in str(info.value)


def test_missing_database_names_it_and_says_how_to_create_it(pg_url: str) -> None:
    url = pg_url.rsplit("/", 1)[0] + "/flightlog_test_missing"
    with pytest.raises(
        flightlog.ConfigurationError,
        match=r"database 'flightlog_test_missing' on 127\.0\.0\.1:5432.*"
        r"does not exist; create it \(createdb",
    ):
        open_store(url)


def test_unknown_role_is_a_credentials_error(pg_url: str) -> None:
    url = pg_url.replace("postgres@", "no_such_role_fl@")
    with pytest.raises(
        flightlog.ConfigurationError, match=r"refused the credentials.*no_such_role_fl"
    ):
        open_store(url)


def test_configure_with_a_bad_postgres_url_fails_at_once() -> None:
    with pytest.raises(flightlog.FlightlogError, match="cannot reach PostgreSQL"):
        flightlog.configure(f"postgresql://postgres@127.0.0.1:{_free_port()}/x")


# -- durability, read-only, transactions ---------------------------------------------------


def test_commits_are_durable_even_if_the_server_default_is_asynchronous(pg_url: str) -> None:
    import psycopg

    db = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{db}" SET synchronous_commit = off')
    s = open_store(pg_url)
    with s.transaction() as tx:
        assert tx.fetchone("SHOW synchronous_commit") == ("on",)
    s.close()


def test_readonly_open(pg_url: str) -> None:
    with pytest.raises(flightlog.StoreCorruptError, match="no Flightlog tables"):
        open_store(pg_url, readonly=True)
    open_store(pg_url).write(Batch(runs=[Run(id="a" * 32, workflow="w", started_ns=1)]))
    ro = open_store(pg_url, readonly=True)
    assert [r.id for r in ro.list_runs()] == ["a" * 32]
    with pytest.raises(flightlog.StoreError, match="read-only"):
        ro.write(Batch(runs=[Run(id="b" * 32, workflow="w", started_ns=1)]))
    assert ro.count_runs() == 1


def test_nested_write_transaction_is_an_error_not_a_deadlock(pg_url: str) -> None:
    s = open_store(pg_url)
    with (
        s.transaction(),
        pytest.raises(flightlog.StoreError, match="already open"),
        s.transaction(),
    ):
        pass
    with s.transaction() as tx:  # the store is still usable
        tx.execute("SELECT 1")


def test_sql_errors_roll_back_and_the_connection_is_reused(pg_url: str) -> None:
    import psycopg

    s = open_store(pg_url)
    with pytest.raises(psycopg.errors.UndefinedTable), s.transaction() as tx:
        tx.execute(
            "INSERT INTO runs (id, workflow, status, started_ns, source, attributes) "
            "VALUES ('x', 'w', 'running', 1, 'sdk', '{}')"
        )
        tx.execute("SELECT * FROM no_such_table")
    assert s.get_run("x") is None and s.count_runs() == 0


def test_read_then_insert_under_a_named_lock_never_collides(pg_url: str) -> None:
    """Read-then-insert (the next id of a table) is safe under ``Tx.lock``, across threads
    and stores."""
    stores = [open_store(pg_url) for _ in range(3)]
    stores[0].migrate("seqtest", [Migration(1, ("CREATE TABLE seqtest (n INTEGER PRIMARY KEY)",))])
    errors: list[BaseException] = []

    def append(s: Any) -> None:
        try:
            for _ in range(15):
                with s.transaction() as tx:
                    tx.lock("seqtest")
                    tx.lock("seqtest")  # re-taking a held lock is free
                    (top,) = tx.fetchone("SELECT COALESCE(MAX(n), 0) FROM seqtest")
                    tx.execute("INSERT INTO seqtest (n) VALUES (?)", (top + 1,))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(stores[i % 3],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with stores[0].read() as tx:
        assert tx.fetchall("SELECT n FROM seqtest ORDER BY n") == [(n,) for n in range(1, 91)]


def test_writers_do_not_wait_for_each_other(pg_url: str) -> None:
    """No store-wide lock: a write commits while another store's write transaction (one
    holding a named lock, too) is still open."""
    a, b = open_store(pg_url), open_store(pg_url)
    assert a.concurrent_writers
    done = threading.Event()
    failed: list[BaseException] = []

    def other() -> None:
        try:
            b.write(Batch(runs=[Run(id="b" * 32, workflow="w", started_ns=2)]))
            with b.transaction() as tx:
                tx.lock("elsewhere")
            done.set()
        except BaseException as exc:  # pragma: no cover - reported below
            failed.append(exc)

    with a.transaction() as tx:
        tx.lock("held")
        tx.execute(
            "INSERT INTO runs (id, workflow, status, started_ns, source, attributes) "
            "VALUES (?, 'w', 'running', 1, 'sdk', '{}')",
            ("a" * 32,),
        )
        t = threading.Thread(target=other)
        t.start()
        t.join(timeout=30)  # a liveness bound, not a timing figure
        assert done.is_set() and not failed, failed
    assert {r.id for r in a.list_runs()} == {"a" * 32, "b" * 32}


def test_the_same_named_lock_excludes_across_stores(pg_url: str) -> None:
    a, b = open_store(pg_url), open_store(pg_url)
    order: list[str] = []
    entered = threading.Event()

    def second() -> None:
        with b.transaction() as tx:
            entered.set()
            tx.lock("counter")
            order.append("second")

    with a.transaction() as tx:
        tx.lock("counter")
        t = threading.Thread(target=second)
        t.start()
        entered.wait(30)
        order.append("first")
    t.join(timeout=30)
    assert order == ["first", "second"]


@pytest.mark.parametrize("run_records", ["with", "without"])
def test_servers_writing_one_trace_at_once_keep_every_step_once_in_start_order(
    pg_url: str, run_records: str
) -> None:
    """Four stores (as four servers) write new spans of the same traces at once, round after
    round, re-sending some of each other's too: every step is stored once, nothing is
    reported as a conflict, and each run's step indices follow start times (the reorder of
    the last writer of a run sees every committed step). ``without``: the batches carry
    the steps but not their runs' records (only a new, unrelated run each)."""
    stores = [open_store(pg_url) for _ in range(4)]
    runs = [f"{r:032x}" for r in range(1, 13)]
    stores[0].write(Batch(runs=[Run(id=r, workflow="w", started_ns=1) for r in runs]))
    rounds, per = 10, 2  # each store adds `per` steps to every run in every round
    total = rounds * per * len(stores)

    def step(run_id: str, j: int) -> Step:
        return Step(
            run_id=run_id,
            id=f"{j + 1:016x}",
            name=f"s{j}",
            kind="tool",
            index=1,
            started_ns=1_000 + (j * 7919) % total,  # start order differs from arrival order
        )

    problems: list[Any] = []

    def work(k: int) -> None:
        try:
            for rnd in range(rounds):
                first = (rnd * len(stores) + k) * per
                mine = [step(r, j) for r in runs for j in range(first, first + per)]
                again = [step(r, j) for r in runs for j in range(0, first, 5)]
                records = [Run(id=r, workflow="w", started_ns=1) for r in runs]
                if run_records == "without":  # and no re-sent step locks the run either
                    again = []
                    records = [Run(id=f"{k + 1:08x}{rnd + 1:024x}", workflow="w", started_ns=1)]
                batch = Batch(runs=records, steps=mine + again)
                problems.extend(stores[k].write(batch, reorder=runs))
        except BaseException as exc:  # pragma: no cover - reported below
            problems.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert problems == []
    for r in runs:
        steps = stores[0].get_steps(r)
        assert len(steps) == total
        by_start = sorted(steps, key=lambda s: (s.started_ns, s.id))
        assert [s.index for s in by_start] == list(range(1, total + 1))


def test_a_connection_dropped_by_the_server_is_replaced(pg_url: str) -> None:
    import psycopg

    s = open_store(pg_url)
    s.write(Batch(runs=[Run(id="a" * 32, workflow="w", started_ns=1)]))
    db = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND application_name = 'flightlog'",
            (db,),
        ).fetchall()
    assert killed and all(k[0] for k in killed)
    assert s.get_run("a" * 32) is not None  # a fresh connection, transparently
    s.write(Batch(runs=[Run(id="b" * 32, workflow="w", started_ns=2)]))
    assert s.count_runs() == 2


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_uses_its_own_connections(pg_url: str) -> None:
    s = open_store(pg_url)
    s.write(Batch(runs=[Run(id="a" * 32, workflow="w", started_ns=1)]))  # pools a connection
    with s.read() as tx:
        (parent_backend,) = tx.fetchone("SELECT pg_backend_pid()")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            s.write(Batch(runs=[Run(id="b" * 32, workflow="w", started_ns=2)]))
            with s.read() as tx:
                (child_backend,) = tx.fetchone("SELECT pg_backend_pid()")
            code = 3 if child_backend == parent_backend else 0 if s.count_runs() == 2 else 2
            s.close()  # must close the child's connections only
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's pooled connections are still its own and still alive.
    with s.read() as tx:
        # the child never closed (terminated) the parent's connection
        assert tx.fetchone(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE pid = ?", (parent_backend,)
        ) == (1,)
    s.write(Batch(runs=[Run(id="c" * 32, workflow="w", started_ns=3)]))
    assert s.count_runs() == 3


def test_a_schema_named_in_the_url_holds_the_tables(pg_url: str) -> None:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA fl_one")
        conn.execute("CREATE SCHEMA fl_two")
    one = open_store(pg_url + "?options=-csearch_path%3Dfl_one")
    two = open_store(pg_url + "?options=-csearch_path%3Dfl_two")
    one.write(Batch(runs=[Run(id="a" * 32, workflow="w", started_ns=1)]))
    assert one.count_runs() == 1 and two.count_runs() == 0
    with psycopg.connect(pg_url) as conn:
        tables = conn.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'runs' "
            "ORDER BY 1"
        ).fetchall()
    assert tables == [("fl_one",), ("fl_two",)]
    one.close()
    two.close()


def test_messages_about_an_open_store_hide_the_password(pg_url: str) -> None:
    url = pg_url.replace("postgres@", "postgres:hunter2@")  # trust auth ignores it
    s = open_store(url)
    assert s.url == url and "hunter2" not in s.display_url and "hunter2" not in repr(s)
    for call in (lambda: s.get_record("ab" * 16), lambda: s.resolve_run_id("abc")):
        with pytest.raises(flightlog.NotFoundError) as info:
            call()
        assert "hunter2" not in str(info.value) and "postgres:***@" in str(info.value)
    s.close()


def test_every_components_migrations_apply_on_postgres(pg_url: str) -> None:
    """The ledger (attached on open), the response layer and forensics create their tables
    through ``migrate`` with PostgreSQL types: blobs are BYTEA, integers 64-bit."""
    from flightlog.forensics import ledger as forensics_tables
    from flightlog.respond.schema import ensure_schema

    s = open_store(pg_url)
    ensure_schema(s)
    forensics_tables._ensure(s)
    with s.read() as tx:
        components = dict(
            tx.fetchall("SELECT component, MAX(version) FROM schema_migrations GROUP BY component")
        )
        types = tx.fetchall(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema()"
        )
    assert {"core", "ledger", "respond", "forensics"} <= set(components)
    by_column = {(t, c): d for t, c, d in types}
    assert by_column[("payloads", "data")] == "bytea"
    assert by_column[("ledger_entries", "leaf")] == "bytea"
    assert by_column[("respond_outbox", "attempts")] == "bigint"
    narrow = [tc for tc, d in by_column.items() if d in ("integer", "real", "boolean")]
    assert narrow == [("schema_migrations", "version")]  # the bookkeeping table's own DDL
    s.close()


# -- many rows in one statement ---------------------------------------------------------------


def test_columnar_recognises_one_row_inserts_only() -> None:
    assert columnar("INSERT INTO t (a, b) VALUES (?, ?)") == ("t", ("a", "b"), "", None)
    assert columnar(
        "INSERT INTO t (a, b, c) VALUES (?, ?, ?) ON CONFLICT (a, b) DO UPDATE SET c = excluded.c"
    ) == ("t", ("a", "b", "c"), "ON CONFLICT (a, b) DO UPDATE SET c = excluded.c", (0, 1))
    assert columnar("INSERT INTO t (a) VALUES (?) ON CONFLICT (a) DO NOTHING RETURNING a")
    for other in (
        "UPDATE t SET a = ? WHERE b = ?",
        "INSERT INTO t (a, b) VALUES (?, 1)",
        "INSERT INTO t (a) VALUES (?) ON CONFLICT (a) DO UPDATE SET b = ?",
        "INSERT INTO t (a) VALUES (?) ON CONFLICT (a) DO UPDATE SET b = 'x'",
        "INSERT INTO t (a) SELECT ? FROM u",
    ):
        assert columnar(other) is None, other
    assert columnar_update("UPDATE steps SET idx = ? WHERE run_id = ? AND id = ?") == (
        "steps",
        ("idx",),
        ("run_id", "id"),
    )
    assert columnar_update("UPDATE t SET a = ? WHERE b = ? OR c = ?") is None
    assert columnar_update("UPDATE t SET a = a + ? WHERE b = ?") is None


def test_many_rows_in_one_statement_keep_what_rows_one_by_one_did(pg_url: str) -> None:
    """executemany of a one-row INSERT goes in as one INSERT ... SELECT FROM unnest of
    binary arrays: NUL in text becomes U+FFFD, bools and ints and floats mix, NULLs stay,
    rows keep their order (serial ids), an upsert meeting a key twice falls back to one
    statement per row (PostgreSQL refuses to update a row twice in one statement)."""
    s = open_store(pg_url)
    s.migrate(
        "columnar_test",
        [
            Migration(
                1,
                (
                    "CREATE TABLE ct (k TEXT PRIMARY KEY, n BIGINT, f DOUBLE PRECISION, "
                    "b BLOB, t TEXT)",
                    "CREATE TABLE ct_serial (id BIGSERIAL PRIMARY KEY, v TEXT NOT NULL)",
                ),
            )
        ],
    )
    rows = [
        ("a", True, 1, b"\x00\x01", "x\x00y"),
        ("b", 7, 2.5, None, None),
        ("c", None, None, b"", ""),
    ]
    with s.transaction() as tx:
        tx.executemany("INSERT INTO ct (k, n, f, b, t) VALUES (?, ?, ?, ?, ?)", rows)
        got = tx.executemany_returning(  # type: ignore[attr-defined]
            "INSERT INTO ct (k, n, f, b, t) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (k) DO NOTHING RETURNING k",
            [("a", 0, 0, None, None), ("d", 1, 1, None, None)],
        )
        assert got == [("d",)]
        tx.executemany(
            "INSERT INTO ct (k, n, f, b, t) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (k) DO UPDATE SET n = excluded.n",
            [("b", 8, 0, None, None), ("b", 9, 0, None, None)],
        )
        tx.executemany("INSERT INTO ct_serial (v) VALUES (?)", [(str(i),) for i in range(50)])
        tx.executemany("UPDATE ct SET n = ?, t = ? WHERE k = ?", [(5, "u", "c"), (6, None, "d")])
    with s.read() as tx:
        assert tx.fetchall("SELECT k, n, f, b, t FROM ct ORDER BY k") == [
            ("a", 1, 1.0, b"\x00\x01", "x\ufffdy"),
            ("b", 9, 2.5, None, None),
            ("c", 5, None, b"", "u"),
            ("d", 6, 1.0, None, None),
        ]
        assert [r[0] for r in tx.fetchall("SELECT v FROM ct_serial ORDER BY id")] == [
            str(i) for i in range(50)
        ]
    s.close()


def test_array_parameters_are_sent_binary_and_read_back(pg_url: str) -> None:
    from flightlog.store.postgres import _binary_at

    assert _binary_at("SELECT %s, %s = ANY(%s)", (2,), 3) == "SELECT %s, %s = ANY(%b)"
    assert _binary_at("SELECT '%%s', %s", (0,), 1) == "SELECT '%%s', %s"  # left alone
    s = open_store(pg_url)
    with s.read() as tx:
        assert tx.fetchone("SELECT ? = ANY(?), ?::text[]", ("b", ["a", "b"], ["x", None])) == (
            True,
            ["x", None],
        )
        assert tx.fetchall("SELECT unnest(?::bigint[])", ([1, 2**40],)) == [(1,), (2**40,)]
    s.close()


def test_in_lists_become_one_array_and_select_the_same_rows(pg_url: str) -> None:
    """``IN (?, ?, ...)`` of strings or integers is sent as ``= ANY(array)`` (``NOT IN`` as
    ``<> ALL``), one statement text whatever the length; lists of anything else, single
    values, and lists inside quotes or comments are left as they are. The rows selected
    are the same (NUL in a text value is looked up as U+FFFD, as everywhere)."""
    from flightlog.store._pgsql import in_lists
    from flightlog.store.postgres import _query

    sql = "SELECT 'IN (?, ?)' FROM t WHERE k = ? AND id NOT IN (?,?) AND n IN (?, ?) -- IN (?, ?)"
    assert [g[2:] for g in in_lists(sql)] == [(1, 2, True), (3, 2, False)]
    query, params = _query(sql, [5, "a", "b\x00", 1, 2])
    assert query == (
        "SELECT 'IN (?, ?)' FROM t WHERE k = %s AND id <> ALL(%b::text[]) "
        "AND n = ANY(%b::bigint[]) -- IN (?, ?)"
    )
    assert params == [5, ["a", "b\ufffd"], [1, 2]]
    assert _query("SELECT 1 WHERE x IN (?, ?)", [1, 2.5])[0] == "SELECT 1 WHERE x IN (%s, %s)"
    assert _query("SELECT 1 WHERE x IN (?)", ["a"])[0] == "SELECT 1 WHERE x IN (%s)"

    store = open_store(pg_url)
    try:
        runs = [Run(id=f"{i:032x}", workflow=f"w{i % 3}", started_ns=i) for i in range(1, 8)]
        store.write(Batch(runs=runs))
        with store.read() as tx:
            ids = [r.id for r in runs[:3]] + ["f" * 32]
            got = tx.fetchall(
                f"SELECT id FROM runs WHERE id IN ({', '.join('?' * len(ids))}) ORDER BY id", ids
            )
            assert [r[0] for r in got] == ids[:3]
            got = tx.fetchall(
                "SELECT id FROM runs WHERE workflow NOT IN (?, ?) AND started_ns IN (?, ?, ?) "
                "ORDER BY id",
                ["w0", "w2", 1, 4, 6],
            )
            assert [r[0] for r in got] == [f"{1:032x}", f"{4:032x}"]
    finally:
        store.close()
