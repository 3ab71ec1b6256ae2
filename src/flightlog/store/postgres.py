"""The scale-out store: PostgreSQL through psycopg 3 (``pip install 'flightlog[postgres]'``).

URL: ``postgresql://user[:password]@host[:port]/database[?param=value...]``, any libpq
connection URI (``sslmode``, ``options=-csearch_path%3Dmyschema``, ...). The database must
exist; the tables are created on first open (``Store.migrate``).

The record operations are the shared portable SQL of ``SQLStore``; this module supplies
connections and transactions:

- **Placeholders and types.** SQL arrives with ``?`` placeholders and SQLite-compatible type
  names; ``flightlog.store._pgsql`` rewrites them (the rule is documented there). ``BYTEA``
  comes back as ``bytes``; Python ``bool`` parameters are sent as 0/1 like on SQLite. Text
  cannot hold NUL on PostgreSQL: a NUL in a text parameter is stored (and looked up) as
  U+FFFD; payloads are canonical JSON in ``BYTEA`` and keep every byte.
- **Durability.** ``synchronous_commit`` is raised to ``on`` for Flightlog's sessions when the
  server default is ``off``, so ``write`` returns only after the commit record is flushed.
- **Concurrent writers.** Write transactions of every thread, process and server run at the
  same time; nothing store-wide is locked for them. Records are written insert-first in a
  fixed order (``_sql.write_batch``): new runs, steps, edges and findings go in as
  ``INSERT ... ON CONFLICT DO NOTHING RETURNING``, one statement per table over binary
  column arrays (``_PgTx._columnar``: ``INSERT ... SELECT * FROM unnest(...)``);
  only a record that is already stored is read back, ``FOR UPDATE``, and merged.
  Capabilities that read before they write (the next incident id) take a named lock
  first (``Tx.lock``: a transaction-scoped advisory lock on a 63-bit key of database,
  schema and name). A
  transaction that PostgreSQL aborts as a deadlock or a serialization failure is retried
  (``write``, ``run_write`` (the ledger's redaction, retention, integration and
  checkpoints) and every ``_run_write``), with jittered backoff.
- **Time partitions.** ``runs`` and ``steps`` are range-partitioned by the bucket of each
  run's first write (``flightlog.store._pgpart``): ``write`` passes every run's
  ``part_day`` to ``write_batch``, and retention drops whole partitions.
- **Migrations** alone take the store-wide advisory lock (one per database and schema), so
  processes that open a new store at once apply each migration exactly once. Reads take no
  lock and see a consistent snapshot (``REPEATABLE READ READ ONLY``).
- **Threads.** Connections come from a ``psycopg_pool.ConnectionPool``; each transaction has
  one connection to itself. A connection that breaks is discarded and the pool opens a new
  one. After ``fork`` the child opens its own pool and never touches the parent's
  connections.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from flightlog._retry import backoff_s
from flightlog.errors import ConfigurationError, StoreCorruptError, StoreError
from flightlog.model import Batch
from flightlog.store import _pgpart, schema
from flightlog.store._pgsql import (
    columnar,
    columnar_update,
    in_lists,
    to_postgres_ddl,
    to_pyformat,
    with_arrays,
)
from flightlog.store._sql import SQLStore
from flightlog.store.base import Migration, Tx

log = logging.getLogger("flightlog.store")

CONNECT_TIMEOUT_S = 10  # unless the URL sets connect_timeout
DAYS_SEEN = 100_000  # run ids whose partition day a store remembers having recorded
LOCK_TIMEOUT_MS = 60_000  # how long a writer waits for a lock (named, row or migration)
POOL_MAX = 16  # connections per store object (one per concurrent transaction)
POOL_WAIT_S = 60.0  # how long a transaction waits for a free connection
LATE_PARTITION_WAIT_MS = 200  # creating a late bucket's partition waits no longer
PARTITION_RETRY_S = 30.0  # first delay before a failed current/coming bucket is tried again
PARTITION_RETRY_MAX_S = 3600.0  # the longest such delay
RETRIES = 8  # attempts of a write aborted as a deadlock or serialization failure
_RETRYABLE = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)


class _BoolAsInt(Dumper):
    """Send Python ``bool`` as 0/1 into integer columns, as sqlite3 does."""

    oid = psycopg.adapters.types["int8"].oid

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


def redact(url: str) -> str:
    """The URL with any password replaced by ``***`` (for messages and logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _target(url: str) -> tuple[str, str, str]:
    """(host:port, database, user) named by the URL, with libpq's defaults."""
    try:
        parts = urlsplit(url)
        port = parts.port or 5432
    except ValueError as exc:
        raise ConfigurationError(
            f"malformed PostgreSQL URL {redact(url)!r} ({exc}); expected "
            "postgresql://user@host:5432/database"
        ) from exc
    host = parts.hostname or os.environ.get("PGHOST") or "localhost"
    user = parts.username or os.environ.get("PGUSER") or _login_name()
    db = parts.path.lstrip("/") or os.environ.get("PGDATABASE") or user
    return f"{host}:{port}", db, user


def _login_name() -> str:
    """libpq's default user (and so database): the operating system's login name."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no login name (a container without the user's passwd entry)
        return "(default user)"


def lock_key(database: str, schema: str, name: str | None = None) -> int:
    """The 63-bit advisory-lock key of the store-wide lock (``name`` None) or of a named
    lock, in one database and schema."""
    text = f"flightlog:{database}:{schema}" + ("" if name is None else f":{name}")
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


class _PgTx:
    """``Tx`` over one psycopg connection inside a transaction; rewrites ``?`` to ``%s``."""

    __slots__ = ("_conn", "_finish", "_held", "_scope", "_types", "lock_wait_ns", "nul_replaced")

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        scope: tuple[str, str] = ("", ""),
        types: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self._conn = conn
        self._scope = scope
        self._types = {} if types is None else types  # table -> {column: SQL type}
        self._held: set[str] = set()
        self.lock_wait_ns = 0  # time spent waiting in ``lock``
        # A NUL in text written (executemany) went in as U+FFFD (``_no_nul``): the ledger's
        # write hook then logs the records' text as stored
        self.nul_replaced = False
        self._finish: list[Any] = []  # run just before COMMIT (``at_commit``), in order

    def at_commit(self, fn: Any) -> None:
        """Run ``fn()`` at the end of this write transaction, just before it commits (an
        error in it rolls the transaction back, as one raised in its body)."""
        self._finish.append(fn)

    def lock(self, name: str) -> None:
        if name in self._held:
            return
        t0 = time.perf_counter_ns()
        self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(*self._scope, name),))
        self.lock_wait_ns += time.perf_counter_ns() - t0
        self._held.add(name)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(*_query(sql, params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any:
        rows = rows if isinstance(rows, list) else list(rows)
        if len(rows) > 1:
            cur = self._columnar(sql, rows)
            if cur is not None:
                return cur
        cur = self._conn.cursor()
        cur.executemany(to_pyformat(sql), self._no_nul_rows(rows))
        return cur

    def _no_nul_rows(self, rows: list[Sequence[Any]]) -> list[Sequence[Any]]:
        out = [_no_nul(r) for r in rows]
        if not self.nul_replaced and any(o is not r for o, r in zip(out, rows, strict=True)):
            self.nul_replaced = True
        return out

    def _columnar(self, sql: str, rows: list[Sequence[Any]]) -> Any:
        """A one-row ``INSERT ... VALUES`` (or ``UPDATE ... SET ... WHERE k = ? AND ...``)
        for many rows as one statement: each column one binary array parameter, ``INSERT
        ... SELECT * FROM unnest(...)`` (``UPDATE ... FROM unnest(...)``): one parse, one
        executor run, one round trip; rows go in in the order given. None when the
        statement is neither, or an ``ON CONFLICT DO UPDATE`` (an update) meets a key twice
        (one statement may not update a row twice): the caller sends the rows one by one."""
        plan = columnar(sql)
        if plan is None:
            update = columnar_update(sql)
            if update is None:
                return None
            table, sets, where = update
            columns = (*sets, *where)
            keys: tuple[int, ...] | None = tuple(range(len(sets), len(columns)))
        else:
            table, columns, tail, keys = plan
        types = self._types.get(table)
        if types is None or not all(c in types for c in columns):  # new, or migrated since
            types = self._types[table] = dict(
                self._conn.execute(
                    "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                    "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
                    (table,),
                ).fetchall()
            )
        if not all(c in types for c in columns):
            return None
        if keys is not None and len({tuple(r[i] for i in keys) for r in rows}) < len(rows):
            return None
        params: list[list[Any]] = []
        for column, values in zip(columns, zip(*rows, strict=True), strict=True):
            kind = types[column]
            col: list[Any]
            if kind == "bigint":
                col = [None if v is None else int(v) for v in values]
            elif kind == "double precision":
                col = [None if v is None else float(v) for v in values]
            elif kind == "text":
                col = list(values)
                try:  # str or None (C-speed join); anything else: the long way
                    joined = "".join(filter(None, col))
                except TypeError:
                    joined = "".join(v for v in col if v.__class__ is str)
                if "\x00" in joined:
                    self.nul_replaced = True
                    col = [v.replace("\x00", "\ufffd") if v.__class__ is str else v for v in col]
            else:
                col = list(values)
            params.append(col)
        arrays = ", ".join(f"%b::{types[c]}[]" for c in columns)  # binary: 10x cheaper
        if plan is None:  # UPDATE ... FROM the arrays, joined on the key columns
            return self._conn.execute(
                f"UPDATE {table} SET {', '.join(f'{c} = v.{c}' for c in sets)} "
                f"FROM unnest({arrays}) AS v({', '.join(columns)}) WHERE "
                + " AND ".join(f"{table}.{c} = v.{c}" for c in where),
                params,
            )
        return self._conn.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) "
            + to_pyformat(tail),
            params,
        )

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(*_query(sql, params)).fetchall()

    def executemany_returning(
        self, sql: str, rows: Iterable[Sequence[Any]]
    ) -> list[tuple[Any, ...]]:
        """``sql`` (one row's statement with ``RETURNING``) for every row, as one statement
        (``_columnar``) or pipelined; the rows returned, all statements together."""
        rows = rows if isinstance(rows, list) else list(rows)
        if len(rows) > 1:
            one = self._columnar(sql, rows)
            if one is not None:
                return list(one.fetchall())
        cur = self._conn.cursor()
        cur.executemany(to_pyformat(sql), self._no_nul_rows(rows), returning=True)
        out: list[tuple[Any, ...]] = []
        while True:
            out.extend(cur.fetchall())
            if not cur.nextset():
                return out

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        return self._conn.execute(*_query(sql, params)).fetchone()

    def fetchall_native(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """``sql`` in psycopg's own placeholders (``%s``, ``%b``), not rewritten: for
        PostgreSQL-only statements of the store (``_pgpart``)."""
        return self._conn.execute(sql, params).fetchall()

    def forget_run_day(self, run_id: str) -> None:
        """A deleted run's ``run_days`` row (a later write of it records it anew)."""
        if self.fetchone("SELECT to_regclass('run_days')") != (None,):
            self.execute("DELETE FROM run_days WHERE run_id = ?", (run_id,))

    def drop_partitions_before(self, before_ns: int) -> tuple[list[str], int]:
        """Retention: the time partitions of runs and steps wholly before the cut-off are
        dropped at the end of this transaction (``store/_pgpart.py``); the ids of the runs
        whose records go with them, and how many runs."""
        return _pgpart.drop_before(self, before_ns)


def _array_kind(values: Sequence[Any]) -> str | None:
    """The SQL array element type for a list of ``IN`` values: text or bigint; None for
    anything else (mixed, floats, bytes, None), which stays a list of placeholders."""
    first = values[0].__class__
    if first is str and all(v.__class__ is str for v in values):
        return "text"
    if first is int and all(v.__class__ is int for v in values):
        return "bigint"
    return None


def _query(sql: str, params: Sequence[Any]) -> tuple[str, Sequence[Any]]:
    """The statement for psycopg and its parameters: array parameters (Python lists, as
    in ``= ANY(?)``) are sent in binary, several times cheaper to encode than text. An
    ``IN (?, ?, ...)`` list of strings or integers becomes one such array (``in_lists``):
    a statement of 500 ids is not parsed, in psycopg and in PostgreSQL, for each length."""
    groups = in_lists(sql)
    if groups and len(params) >= groups[-1][2] + groups[-1][3]:
        new: list[Any] = []
        kinds: list[str | None] = []
        at = 0
        for _, _, first, n, _ in groups:
            new.extend(params[at:first])
            values = params[first : first + n]
            kind = _array_kind(values)
            kinds.append(kind)
            if kind is None:
                new.extend(values)
            elif kind == "text":
                new.append([v.replace("\x00", "\ufffd") for v in values])
            else:
                new.append(list(values))
            at = first + n
        new.extend(params[at:])
        sql, params = with_arrays(sql, tuple(kinds)), new
    query = to_pyformat(sql)
    lists = tuple(i for i, v in enumerate(params) if v.__class__ is list)
    if lists:
        query = _binary_at(query, lists, len(params))
    return query, _no_nul(params)


@lru_cache(maxsize=256)
def _binary_at(query: str, positions: tuple[int, ...], count: int) -> str:
    """``query`` with its placeholders at ``positions`` made binary (``%b``); unchanged
    when its placeholders cannot be told apart from a literal ``%``."""
    parts = query.split("%s")
    if "%%" in query or len(parts) != count + 1:
        return query
    out = [parts[0]]
    for i, part in enumerate(parts[1:]):
        out.append("%b" if i in positions else "%s")
        out.append(part)
    return "".join(out)


def _no_nul(params: Sequence[Any]) -> Sequence[Any]:
    """PostgreSQL text cannot hold NUL (U+0000): in a text parameter it becomes U+FFFD, the
    replacement character, in writes and lookups alike, rather than failing the batch."""
    for v in params:
        if isinstance(v, str) and "\x00" in v:
            return [x.replace("\x00", "\ufffd") if isinstance(x, str) else x for x in params]
    return params


class PostgresStore(SQLStore):
    """A ``Store`` on a PostgreSQL database."""

    dialect = "postgresql"
    concurrent_writers = True

    def __init__(self, url: str, *, readonly: bool = False) -> None:
        super().__init__()
        self.url = url
        self.readonly = readonly
        self._where, self._db, self._user = _target(url)
        self._pool_lock = threading.Lock()
        self._pool_obj: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._pid = os.getpid()
        self._orphans: list[Any] = []  # a parent's pools, kept unclosed (see _pool)
        self._local = threading.local()
        self._scope = (self._db, "")
        self._closed = False
        self.retries = 0  # write transactions retried after a deadlock or serialization failure
        self._width = _pgpart.DEFAULT_WIDTH_DAYS  # partition width (days), read from the store
        self._parts: set[int] = set()  # first days of the partitions known to exist
        # Runs whose partition day this store recorded or saw recorded (``_record_days``)
        self._days_seen: dict[str, None] = {}
        self._partitioned = False  # runs and steps are partitioned (set by _partition)
        self._unmade: set[int] = set()  # late buckets left to the default partitions
        # Buckets whose creation failed while waiting was allowed: {day: (retry at
        # (time.monotonic), delay s)}, tried again with a doubling delay.
        self._retry: dict[int, tuple[float, float]] = {}
        self._types: dict[str, dict[str, str]] = {}  # column types (_PgTx._columnar)
        # Fail here, clearly, if the server or database is wrong (a pool would only time out).
        conn = self._connect()
        try:
            row = conn.execute("SELECT current_database(), current_schema()").fetchone()
            if row:
                self._scope = (str(row[0]), str(row[1] or ""))
            row = conn.execute("SHOW fsync").fetchone()
            if row and str(row[0]) == "off":
                log.warning(
                    "PostgreSQL server for %s runs with fsync=off: commits are not durable "
                    "across a crash of the server's machine",
                    self._describe(),
                )
        finally:
            conn.close()
        if readonly:
            self._check_is_flightlog()
        else:
            self.migrate("core", schema.CORE_MIGRATIONS)
            self._partition()

    def __repr__(self) -> str:
        return f"PostgresStore({redact(self.url)!r})"

    @property
    def display_url(self) -> str:
        return redact(self.url)

    # -- connections -----------------------------------------------------------------------
    def _connect_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in self.url:
            kwargs["connect_timeout"] = CONNECT_TIMEOUT_S
        if "application_name" not in self.url:
            kwargs["application_name"] = "flightlog"
        return kwargs

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(self.url, **self._connect_kwargs())
        except psycopg.OperationalError as exc:
            raise self._connect_error(exc) from exc
        except psycopg.ProgrammingError as exc:  # a malformed conninfo
            raise ConfigurationError(
                f"malformed PostgreSQL URL {redact(self.url)!r}: {exc}; expected "
                "postgresql://user@host:5432/database"
            ) from exc
        try:
            self._configure(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        """Session settings of every connection (the pool calls this for each new one)."""
        try:
            conn.adapters.register_dumper(bool, _BoolAsInt)
            row = conn.execute("SHOW synchronous_commit").fetchone()
            if row and str(row[0]) == "off":
                # Durable before write returns: wait for the local WAL flush at commit.
                conn.execute("SET synchronous_commit = on")
            conn.execute(f"SET lock_timeout = {int(LOCK_TIMEOUT_MS)}")
            # A writer whose host or network dies mid-transaction holds row and named locks
            # until the server notices: server-side TCP keepalives make that about a minute
            # (ignored on Unix-domain sockets).
            conn.execute(
                "SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10; "
                "SET tcp_keepalives_count = 3"
            )
            if self.readonly:
                conn.execute("SET default_transaction_read_only = on")
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL store {self._describe()}: {exc}") from exc

    def _pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        """This process's pool, opened on first use; a forked child opens its own."""
        if self._closed:
            raise StoreError(f"PostgreSQL store {self._describe()} is closed")
        with self._pool_lock:
            if os.getpid() != self._pid:
                # Forked: the parent's sockets are not ours. Keep its pool referenced so no
                # finaliser here ever sends a Terminate message on the parent's connections.
                if self._pool_obj is not None:
                    self._orphans.append(self._pool_obj)
                self._pool_obj = None
                self._pid = os.getpid()
            if self._pool_obj is None:
                self._pool_obj = ConnectionPool(
                    self.url,
                    kwargs=self._connect_kwargs(),
                    configure=self._configure,
                    min_size=0,
                    max_size=POOL_MAX,
                    timeout=POOL_WAIT_S,
                    name="flightlog",
                    num_workers=2,
                    open=True,
                )
            return self._pool_obj

    def _getconn(self) -> psycopg.Connection[Any]:
        pool = self._pool()
        try:
            return pool.getconn()
        except PoolTimeout as exc:
            # Busy, or the server went away: say which by trying a connection directly.
            self._connect().close()
            raise StoreError(
                f"PostgreSQL store {self._describe()}: no free connection within "
                f"{POOL_WAIT_S:g}s ({POOL_MAX} are in use by this process)"
            ) from exc

    def _putconn(self, conn: psycopg.Connection[Any]) -> None:
        with self._pool_lock:
            pool = self._pool_obj if os.getpid() == self._pid else None
        if pool is None or self._closed:
            if os.getpid() == self._pid:
                with suppress(psycopg.Error):
                    conn.close()
            return
        with suppress(Exception):  # a pool closed meanwhile
            pool.putconn(conn)

    def _describe(self) -> str:
        return f"database {self._db!r} on {self._where} (user {self._user})"

    def _connect_error(self, exc: psycopg.Error) -> Exception:
        msg = str(exc).strip()
        low = msg.lower()
        where = self._describe()
        if "does not exist" in low and "database" in low:
            return ConfigurationError(
                f"PostgreSQL {where} does not exist; create it (createdb -h "
                f"{self._where.rsplit(':', 1)[0]} -p {self._where.rsplit(':', 1)[1]} -U "
                f"{self._user} {self._db}) or point the URL at an existing database"
            )
        if (
            "password authentication failed" in low
            or ("role" in low and "does not exist" in low)
            or "no password supplied" in low
            or "pg_hba.conf" in low
            or "authentication" in low
        ):
            return ConfigurationError(
                f"PostgreSQL refused the credentials for {where}: {_last_line(msg)}; check the "
                "user and password in the URL (postgresql://user:password@host/db)"
            )
        return StoreError(
            f"cannot reach PostgreSQL for {where}: {_last_line(msg)}; is the server running "
            "and accepting TCP connections at that host and port? Check the URL "
            f"{redact(self.url)!r}"
        )

    # -- transactions ----------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[_PgTx]:
        if self.readonly:
            raise StoreError(f"PostgreSQL store {self._describe()} was opened read-only")
        if getattr(self._local, "in_write", False):
            raise StoreError(
                "a write transaction is already open in this thread; nested transactions "
                "are not supported (do the work inside the outer transaction)"
            )
        self._local.in_write = True
        conn: psycopg.Connection[Any] | None = None
        try:
            conn = self._begin("BEGIN")
            try:
                tx = _PgTx(conn, self._scope, self._types)
                yield tx
                for fn in tx._finish:
                    fn()
            except BaseException:
                _rollback(conn)
                raise
            with self._errors():
                try:
                    conn.execute("COMMIT")
                except BaseException:
                    _rollback(conn)
                    raise
        finally:
            self._local.in_write = False
            if conn is not None:
                _rollback(conn)  # a no-op after COMMIT; ends a transaction that failed early
                self._putconn(conn)

    @contextmanager
    def read(self) -> Iterator[_PgTx]:
        conn = self._begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            try:
                yield _PgTx(conn, self._scope, self._types)
            finally:
                _rollback(conn)  # nothing to keep: ends the snapshot
        finally:
            self._putconn(conn)

    def _begin(self, begin: str) -> psycopg.Connection[Any]:
        """A connection with a transaction begun. Pooled connections that the server has
        dropped since (a restart, an idle timeout) are replaced by fresh ones, once."""
        conn = self._getconn()
        try:
            conn.execute(begin)
            return conn
        except psycopg.OperationalError:
            self._putconn(conn)  # broken: the pool discards it
        with suppress(Exception):
            self._pool().check()  # ping the idle ones, replace the dead
        conn = self._getconn()
        try:
            with self._errors():
                conn.execute(begin)
        except BaseException:
            self._putconn(conn)
            raise
        return conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except _RETRYABLE:
            raise
        except psycopg.OperationalError as exc:
            if "lock timeout" in str(exc):
                raise StoreError(
                    f"PostgreSQL store {self._describe()}: waited {LOCK_TIMEOUT_MS // 1000}s "
                    "for another writer's transaction; retry, or find the session holding it "
                    "in pg_stat_activity"
                ) from exc
            raise StoreError(
                f"PostgreSQL store {self._describe()}: {_last_line(str(exc))}"
            ) from exc

    def _run_write(self, fn: Any, *, global_lock: bool = False) -> Any:
        """``fn(tx)`` in a write transaction, retried when PostgreSQL aborts it as a deadlock
        or a serialization failure (``fn`` must be safe to run again: it is, since nothing of
        an aborted transaction stays)."""
        attempt = 0
        while True:
            try:
                with self.transaction() as tx:
                    if global_lock:
                        with self._errors():
                            tx.execute("SELECT pg_advisory_xact_lock(?)", (lock_key(*self._scope),))
                    return fn(tx)
            except _RETRYABLE as exc:
                attempt += 1
                if attempt >= RETRIES:
                    raise StoreError(
                        f"PostgreSQL store {self._describe()}: gave up after {attempt} "
                        f"attempts: {_last_line(str(exc))}"
                    ) from exc
                self.retries += 1
                log.debug("write transaction retried (%s): %s", type(exc).__name__, exc)
                time.sleep(backoff_s(attempt, base_s=0.005, cap_s=0.5))
            except psycopg.Error as exc:
                raise StoreError(
                    f"PostgreSQL store {self._describe()}: {_last_line(str(exc))}"
                ) from exc

    def _run_migration(self, fn: Any) -> Any:
        return self._run_write(fn, global_lock=True)

    # -- migrations ------------------------------------------------------------------------
    def migrate(self, component: str, migrations: Sequence[Migration]) -> None:
        """Apply ``migrations`` with their DDL mapped to PostgreSQL types (see ``_pgsql``),
        under the store-wide lock, so concurrent openers apply each version once."""
        translated = [
            Migration(m.version, tuple(to_postgres_ddl(s) for s in m.statements), m.description)
            for m in migrations
        ]
        super().migrate(component, translated)

    # -- time partitions (store/_pgpart.py) ----------------------------------------------
    def _partition(self) -> None:
        """Partition runs and steps (once per database: a migration of component
        ``partitions``), then make sure the current and next buckets exist."""
        width = _pgpart.width_from_env()

        def apply(tx: Tx) -> int:
            row = tx.fetchone(
                "SELECT MAX(version) FROM schema_migrations WHERE component = ?",
                (_pgpart.COMPONENT,),
            )
            if not row or row[0] is None:
                _pgpart.migrate(tx, width)
                tx.execute(
                    "INSERT INTO schema_migrations (component, version, description, "
                    "applied_ns) VALUES (?, 1, ?, ?)",
                    (
                        _pgpart.COMPONENT,
                        "runs and steps partitioned by the bucket of their run's first start",
                        time.time_ns(),
                    ),
                )
            return _pgpart.width(tx)

        self._width = self._run_migration(apply)
        self._partitioned = True
        self._ensure_partitions(_pgpart.ahead(self._width, time.time_ns()))

    def _ensure_partitions(self, days: set[int], *, wait: bool = True) -> None:
        """Create the partitions of the buckets starting on ``days`` that do not exist, each
        bucket in its own transaction (one that fails leaves the others made). ``wait``
        False (late data): only if the parent tables' locks come at once, and not again in
        this process if that fails (the rows go to the default partitions). ``wait`` True
        (the current and coming buckets): a failed bucket is tried again by a later write,
        after a delay doubling from ``PARTITION_RETRY_S`` to ``PARTITION_RETRY_MAX_S``; its
        rows go to the default partitions meanwhile. A bucket whose rows already sit in a
        default partition cannot be made (PostgreSQL refuses: the default would hold rows
        of the new partition's range); its rows stay there, deleted by retention row by
        row, and its creation keeps being retried with the doubling delay."""
        now = time.monotonic()
        missing = {
            d for d in days - self._parts - self._unmade if self._retry.get(d, (0.0, 0.0))[0] <= now
        }
        if not missing:
            return
        with self.read() as tx:
            self._parts = set(_pgpart.existing(tx, "steps")) & set(_pgpart.existing(tx, "runs"))
        missing -= self._parts
        for day in sorted(missing):

            def apply(tx: Tx, day: int = day) -> None:
                if not wait:
                    tx.execute(f"SET LOCAL lock_timeout = {int(LATE_PARTITION_WAIT_MS)}")
                tx.lock("partitions")
                _pgpart.create(tx, [day], self._width)

            try:
                self._run_write(apply)
            except StoreError as exc:
                # A write never fails over its partition: its rows go to the default ones.
                (log.warning if wait else log.debug)(
                    "partition of bucket %s not created (%s): its rows go to the default "
                    "partitions",
                    day,
                    exc,
                )
                if wait:
                    delay = self._retry.get(day, (0.0, PARTITION_RETRY_S / 2))[1] * 2
                    delay = min(delay, PARTITION_RETRY_MAX_S)
                    self._retry[day] = (time.monotonic() + delay, delay)
                else:
                    self._unmade.add(day)
                continue
            self._parts.add(day)
            self._retry.pop(day, None)

    def _partition_days(self, batch: Batch) -> Any:
        if not self._partitioned or (not batch.runs and not batch.steps):
            return None
        now = time.time_ns()
        first: dict[str, int] = {}
        for r in batch.runs:
            if r.started_ns < first.get(r.id, r.started_ns + 1):
                first[r.id] = r.started_ns
        for s in batch.steps:
            if s.started_ns < first.get(s.run_id, s.started_ns + 1):
                first[s.run_id] = s.started_ns
        width = self._width
        wanted = {rid: _pgpart.bucket(ns, width, now) for rid, ns in first.items()}
        current = _pgpart.ahead(width, now)
        if not current <= self._parts:
            self._ensure_partitions(current)
        late = set(wanted.values()) - self._parts
        if late:
            self._ensure_partitions(late, wait=False)
        self._record_days(wanted)
        return lambda tx: _pgpart.run_days(tx, wanted)

    def _record_days(self, wanted: dict[str, int]) -> None:
        """Record the partition day of the write's runs not seen by this store yet in a
        short transaction of its own, before the write's: a second writer of the same new
        run (another server with other spans of the trace) then waits for this short
        transaction instead of for the whole write (it still meets the write at the run's
        row, later in its own). Committed asynchronously: the write's commit flushes the
        WAL past it, so it is durable whenever the write is; when the write fails, the row
        stays (the day of the run's first attempted write; a later write uses it; retention
        deletes it with its bucket)."""
        ids = sorted(rid for rid in wanted if rid not in self._days_seen)
        if not ids:
            return

        def record(tx: Tx) -> None:
            tx.execute("SET LOCAL synchronous_commit = off")
            tx.execute(
                "INSERT INTO run_days (run_id, part_day) "
                "SELECT * FROM unnest(?::text[], ?::bigint[]) ON CONFLICT (run_id) DO NOTHING",
                (ids, [wanted[i] for i in ids]),
            )

        self._run_write(record)
        seen = self._days_seen
        seen.update(dict.fromkeys(ids))
        while len(seen) > DAYS_SEEN:  # oldest first
            del seen[next(iter(seen))]

    def _check_is_flightlog(self) -> None:
        with self.read() as tx:
            row = tx.fetchone("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if not row or not row[0]:
            raise StoreCorruptError(
                f"PostgreSQL {self._describe()} holds no Flightlog tables; open it once "
                "without read-only to create them"
            )

    def close(self) -> None:
        if not self._closed:
            self._abandon_if_unreachable()
            self._run_close_hooks()
        with self._pool_lock:
            self._closed = True
            pool, self._pool_obj = self._pool_obj, None
            mine = os.getpid() == self._pid
        if pool is not None and mine:
            with suppress(Exception):
                pool.close()

    def _abandon_if_unreachable(self) -> None:
        """Before the close hooks: when the database cannot be reached any more (dropped,
        down), close the pool at once, so that a thread waiting for a connection (the
        ledger's integrator) and the hooks (the ledger's tail checkpoint) fail now instead
        of each waiting ``POOL_WAIT_S``: nothing can be written anyway. A server stopped
        with its database gone took minutes to exit."""
        with self._pool_lock:
            pool = self._pool_obj if os.getpid() == self._pid else None
        if pool is None:
            return
        try:
            self._connect().close()
        except Exception as exc:
            log.warning("unreachable at close, what is not yet written is given up: %s", exc)
            with suppress(Exception):
                pool.close(timeout=1.0)


def _rollback(conn: psycopg.Connection[Any]) -> None:
    if conn.closed or conn.broken:
        return
    try:
        if conn.info.transaction_status != TransactionStatus.IDLE:
            conn.execute("ROLLBACK")
    except psycopg.Error:
        pass


def _last_line(msg: str) -> str:
    """psycopg's connection errors are multi-line; the server's reason is the useful part."""
    lines = [ln.strip() for ln in msg.splitlines() if ln.strip()]
    text = " ".join(lines)
    return text.replace("connection failed: ", "")
