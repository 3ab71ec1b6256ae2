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
- **One writer at a time.** Every write transaction first takes a transaction-scoped advisory
  lock (one per database and schema), so write transactions are serialised store-wide, as
  on SQLite. Capabilities rely on this: the ledger appends leaves after reading the tree
  size; incident grouping reads before it inserts. Migrations run under the same lock, so
  processes that open a new store at once apply each migration exactly once. Reads take no
  lock and see a consistent snapshot (``REPEATABLE READ READ ONLY``).
- **Threads.** Connections come from a small pool; each transaction has one connection to
  itself. A connection that breaks is discarded and the next transaction opens a new one.
  After ``fork`` the child opens its own connections and never touches the parent's.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import TransactionStatus

from flightlog.errors import ConfigurationError, StoreCorruptError, StoreError
from flightlog.store import schema
from flightlog.store._pgsql import to_postgres_ddl, to_pyformat
from flightlog.store._sql import SQLStore
from flightlog.store.base import Migration

log = logging.getLogger("flightlog.store")

CONNECT_TIMEOUT_S = 10  # unless the URL sets connect_timeout
LOCK_TIMEOUT_MS = 60_000  # how long a writer waits for the store-wide write lock
MAX_IDLE_CONNECTIONS = 8


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
    user = parts.username or os.environ.get("PGUSER") or "(default user)"
    db = parts.path.lstrip("/") or os.environ.get("PGDATABASE") or user
    return f"{host}:{port}", db, user


class _PgTx:
    """``Tx`` over one psycopg connection inside a transaction; rewrites ``?`` to ``%s``."""

    __slots__ = ("_conn",)

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(to_pyformat(sql), _no_nul(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any:
        cur = self._conn.cursor()
        cur.executemany(to_pyformat(sql), [_no_nul(r) for r in rows])
        return cur

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(to_pyformat(sql), _no_nul(params)).fetchall()

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        return self._conn.execute(to_pyformat(sql), _no_nul(params)).fetchone()


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

    def __init__(self, url: str, *, readonly: bool = False) -> None:
        super().__init__()
        self.url = url
        self.readonly = readonly
        self._where, self._db, self._user = _target(url)
        self._pool_lock = threading.Lock()
        self._idle: list[psycopg.Connection[Any]] = []
        self._pid = os.getpid()
        self._orphans: list[psycopg.Connection[Any]] = []  # a parent's, kept unclosed
        self._local = threading.local()
        self._lock_key: int | None = None
        self._closed = False
        conn = self._acquire()  # fail here, clearly, if the server or database is wrong
        try:
            self._lock_key = self._compute_lock_key(conn)
            row = conn.execute("SHOW fsync").fetchone()
            if row and str(row[0]) == "off":
                log.warning(
                    "PostgreSQL server for %s runs with fsync=off: commits are not durable "
                    "across a crash of the server's machine",
                    self._describe(),
                )
        finally:
            self._release(conn)
        if readonly:
            self._check_is_flightlog()
        else:
            self.migrate("core", schema.CORE_MIGRATIONS)

    def __repr__(self) -> str:
        return f"PostgresStore({redact(self.url)!r})"

    @property
    def display_url(self) -> str:
        return redact(self.url)

    # -- connections -----------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection[Any]:
        kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in self.url:
            kwargs["connect_timeout"] = CONNECT_TIMEOUT_S
        if "application_name" not in self.url:
            kwargs["application_name"] = "flightlog"
        try:
            conn = psycopg.connect(self.url, **kwargs)
        except psycopg.OperationalError as exc:
            raise self._connect_error(exc) from exc
        except psycopg.ProgrammingError as exc:  # a malformed conninfo
            raise ConfigurationError(
                f"malformed PostgreSQL URL {redact(self.url)!r}: {exc}; expected "
                "postgresql://user@host:5432/database"
            ) from exc
        try:
            conn.adapters.register_dumper(bool, _BoolAsInt)
            row = conn.execute("SHOW synchronous_commit").fetchone()
            if row and str(row[0]) == "off":
                # Durable before write returns: wait for the local WAL flush at commit.
                conn.execute("SET synchronous_commit = on")
            conn.execute(f"SET lock_timeout = {int(LOCK_TIMEOUT_MS)}")
            if self.readonly:
                conn.execute("SET default_transaction_read_only = on")
        except psycopg.Error as exc:
            conn.close()
            raise StoreError(f"PostgreSQL store {self._describe()}: {exc}") from exc
        return conn

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

    def _acquire(self) -> psycopg.Connection[Any]:
        if self._closed:
            raise StoreError(f"PostgreSQL store {self._describe()} is closed")
        with self._pool_lock:
            if os.getpid() != self._pid:
                # Forked: the parent's sockets are not ours. Keep the objects alive so their
                # finalisers never send a Terminate message on the parent's connections.
                self._orphans.extend(self._idle)
                self._idle = []
                self._pid = os.getpid()
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed and not conn.broken:
                    return conn
        return self._connect()

    def _release(self, conn: psycopg.Connection[Any]) -> None:
        healthy = (
            not conn.closed
            and not conn.broken
            and conn.info.transaction_status == TransactionStatus.IDLE
        )
        with self._pool_lock:
            if (
                healthy
                and not self._closed
                and os.getpid() == self._pid
                and len(self._idle) < MAX_IDLE_CONNECTIONS
            ):
                self._idle.append(conn)
                return
        if os.getpid() == self._pid:
            conn.close()

    def _compute_lock_key(self, conn: psycopg.Connection[Any]) -> int:
        """A 63-bit advisory-lock key for this database and schema."""
        row = conn.execute("SELECT current_database(), current_schema()").fetchone()
        name = f"flightlog:{row[0] if row else self._db}:{row[1] if row else ''}"
        return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1

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
            if self._lock_key is not None:
                with self._errors():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
            try:
                yield _PgTx(conn)
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
                self._release(conn)

    @contextmanager
    def read(self) -> Iterator[_PgTx]:
        conn = self._begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            try:
                yield _PgTx(conn)
            finally:
                _rollback(conn)  # nothing to keep: ends the snapshot
        finally:
            self._release(conn)

    def _begin(self, begin: str) -> psycopg.Connection[Any]:
        """A connection with a transaction begun. A pooled connection that the server has
        dropped since (a restart, an idle timeout) is replaced by a fresh one, once."""
        conn = self._acquire()
        try:
            conn.execute(begin)
            return conn
        except psycopg.OperationalError:
            conn.close()
        conn = self._connect()
        try:
            with self._errors():
                conn.execute(begin)
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
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

    def _run_write(self, fn: Any) -> Any:
        try:
            with self.transaction() as tx:
                return fn(tx)
        except psycopg.Error as exc:
            raise StoreError(
                f"PostgreSQL store {self._describe()}: {_last_line(str(exc))}"
            ) from exc

    # -- migrations ------------------------------------------------------------------------
    def migrate(self, component: str, migrations: Sequence[Migration]) -> None:
        """Apply ``migrations`` with their DDL mapped to PostgreSQL types (see ``_pgsql``),
        under the store-wide write lock, so concurrent openers apply each version once."""
        translated = [
            Migration(m.version, tuple(to_postgres_ddl(s) for s in m.statements), m.description)
            for m in migrations
        ]
        super().migrate(component, translated)

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
            self._run_close_hooks()
        with self._pool_lock:
            self._closed = True
            idle, self._idle = self._idle, []
        if os.getpid() == self._pid:
            for conn in idle:
                with suppress(psycopg.Error):
                    conn.close()


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
