"""The embedded store: one SQLite file in WAL mode.

Durability: ``synchronous=FULL`` and one transaction per batch, so a batch is on disk when
``write`` returns (a process killed with SIGKILL afterwards loses nothing). The log is copied
into the file once it holds about ``WAL_AUTOCHECKPOINT_BYTES`` and when the last connection
closes. A new store file gets pages of ``PAGE_SIZE`` bytes; an existing file keeps its own.
Concurrency: one connection guarded by a lock inside a process; other processes read
concurrently through WAL and wait up to ``busy_timeout`` for the write lock.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flightlog.errors import ConfigurationError, StoreCorruptError, StoreError
from flightlog.store import schema
from flightlog.store._sql import SQLStore

BUSY_TIMEOUT_MS = 10_000  # $FLIGHTLOG_SQLITE_BUSY_TIMEOUT_MS overrides
# Pages of a new store file (SQLite's default is 4 KiB). A recorded step writes a ~1 KB ledger
# row and rows of a few indexes; with 16 KiB pages a batch's commit writes a quarter of the
# WAL frames (one pwrite each): about 2 µs less CPU per ledger row (docs/benchmarks.md). Set
# only when the file is created: a store made with other pages keeps them (page_size cannot
# change in WAL mode without rebuilding the file, which is never done on open).
PAGE_SIZE = 16_384
# The write-ahead log is copied into the file once it holds this many bytes, counted in pages
# of the store's own size (SQLite's default is 1,000 pages). Every batch rewrites pages of the
# same indexes (payload hashes, step keys, the ledger's); a longer log copies each such page
# once per checkpoint instead of nearly once per batch: about 8 µs less CPU per recorded step,
# checkpoint included (docs/benchmarks.md), for a log of up to about 40 MiB beside the file
# while it is written (10,000 pages of 4 KiB, 2,500 of 16 KiB).
WAL_AUTOCHECKPOINT_BYTES = 10_000 * 4096
# Page cache per connection, in KiB (a negative cache_size): the same memory whatever the
# page size.
CACHE_KIB = 65_536


def bind_directly(adapters: dict[Any, Any] | None = None) -> None:
    """Let ``None`` and ``bytes`` parameters reach SQLite without the failed adaptation
    Python's ``sqlite3`` tries on them.

    CPython's ``sqlite3`` (3.11) binds ``int``, ``float`` and ``str`` as they are, but asks
    its adapter registry about any other value: with no adapter registered it looks up
    ``__adapt__`` on its protocol type, which formats an ``AttributeError`` message only to
    discard it, then ``__conform__`` on the value, and binds the value unchanged. Most of a
    stored span's parameters are ``None`` (absent columns) or ``bytes`` (payloads, ledger
    leaves), so that lookup was about 2,000 instructions each, several per cent of the
    ingestion writer's CPU (docs/benchmarks.md). An adapter that returns its argument
    unchanged (a C function: ``bytes.__bytes__`` of an exact ``bytes`` is the same object; a
    dict's ``get`` answers ``None``) is found at once, and the value is bound exactly as before
    (NULL, BLOB). An adapter the program registered for either type is left in place.
    """
    if adapters is None:
        adapters = getattr(sqlite3, "adapters", None)
        if not isinstance(adapters, dict):
            return
    proto = sqlite3.PrepareProtocol
    adapters.setdefault((type(None), proto), {}.get)
    adapters.setdefault((bytes, proto), getattr(bytes, "__bytes__", bytes))


bind_directly()


def wal_autocheckpoint_pages(page_size: int) -> int:
    """``wal_autocheckpoint`` (in pages) for a store whose pages are ``page_size`` bytes."""
    return max(1, WAL_AUTOCHECKPOINT_BYTES // page_size)


def _busy_timeout_ms() -> int:
    raw = os.environ.get("FLIGHTLOG_SQLITE_BUSY_TIMEOUT_MS", "")
    try:
        return int(raw) if raw else BUSY_TIMEOUT_MS
    except ValueError as exc:
        raise ConfigurationError(
            f"$FLIGHTLOG_SQLITE_BUSY_TIMEOUT_MS must be an integer, got {raw!r}"
        ) from exc


class _SQLiteTx:
    """``Tx`` over a sqlite3 connection."""

    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any:
        return self._conn.executemany(sql, rows)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, params).fetchall()

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._conn.execute(sql, params).fetchone()
        return row

    def lock(self, name: str) -> None:
        """A no-op: SQLite runs one write transaction at a time (``BEGIN IMMEDIATE``)."""

    def insert_all(self, sql: str, rows: Sequence[Sequence[Any]]) -> bool:
        """``sql`` (one row's ``INSERT ... ON CONFLICT DO NOTHING``) for every row; True when
        every row was inserted. Otherwise nothing of it stays (a savepoint is rolled back)
        and False: the caller inserts again, learning which keys were new. A recorder's
        batch is all new, so this is one ``executemany`` with nothing returned."""
        conn = self._conn
        conn.execute("SAVEPOINT insert_all")
        try:
            inserted = conn.executemany(sql, rows).rowcount
        except BaseException:
            conn.execute("ROLLBACK TO insert_all")
            conn.execute("RELEASE insert_all")
            raise
        if inserted != len(rows):
            conn.execute("ROLLBACK TO insert_all")
        conn.execute("RELEASE insert_all")
        return inserted == len(rows)


def path_from_url(url: str) -> Path:
    """``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` -> Path."""
    if not url.startswith("sqlite:///"):
        raise ConfigurationError(f"not a SQLite URL: {url!r}; expected sqlite:///path/to/file.db")
    rest = url[len("sqlite:///") :]
    if not rest:
        raise ConfigurationError(f"SQLite URL {url!r} names no file; expected sqlite:///file.db")
    return Path(rest)


_open_stores: weakref.WeakSet[SQLiteStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork time would never be released in the child.
    for store in list(_open_stores):
        store._lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _is_empty(path: Path) -> bool:
    """True when ``path`` holds no database yet (absent, or 0 bytes and no log beside it)."""
    try:
        if path.stat().st_size:
            return False
    except FileNotFoundError:
        return True
    return not Path(f"{path}-wal").exists()


def _is_damage(exc: BaseException) -> bool:
    msg = str(exc)
    return "malformed" in msg or "not a database" in msg or "corrupt" in msg


def damaged_message(path: Path, detail: str) -> str:
    return (
        f"store {path} is damaged ({detail}): pages of the file cannot be read. Restore it "
        f"from a backup; `sqlite3 {path} .recover` salvages what is readable into a new file"
    )


class SQLiteStore(SQLStore):
    """A ``Store`` on one SQLite file."""

    dialect = "sqlite"
    concurrent_writers = False
    damage: str | None = None  # set once a query meets a damaged page
    # Seconds write transactions waited for the write lock (``BEGIN IMMEDIATE``), held by a
    # transaction of another connection or process (flightlog serve's run-end worker)
    lock_wait_seconds = 0.0

    def __init__(self, url: str, *, readonly: bool = False, create: bool = True) -> None:
        super().__init__()
        self.url = url
        self.path = path_from_url(url)
        self.readonly = readonly
        self.created = False  # True when opening made a new, empty store file
        if not readonly and not self.path.exists():
            if not create:
                raise StoreError(
                    f"no store at {self.path}: the file does not exist (check --db or "
                    "$FLIGHTLOG_URL). Stores are created by recording into them: "
                    "flightlog.configure(url), flightlog serve --db URL, flightlog demo"
                )
            self.created = True
        self._lock = threading.RLock()
        self._conn = self._open()
        self._pid = os.getpid()
        self._inherited: list[sqlite3.Connection] = []
        _open_stores.add(self)
        if not readonly:
            self.migrate("core", schema.CORE_MIGRATIONS)
        else:
            self._check_is_flightlog()

    # -- connection ----------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        path = self.path
        if self.readonly:
            if not path.exists():
                raise StoreError(
                    f"no store at {path}: the file does not exist (check --db or "
                    "$FLIGHTLOG_URL; reading never creates a store)"
                )
        else:
            parent = path.parent if str(path.parent) else Path(".")
            if not parent.exists():
                raise ConfigurationError(
                    f"cannot create store {path}: directory {parent} does not exist"
                )
            if path.exists() and not os.access(path, os.W_OK):
                raise StoreError(
                    f"store file {path} is read-only; make it writable or choose another --db"
                )
            if not path.exists() and not os.access(parent, os.W_OK):
                raise StoreError(f"cannot create store {path}: directory {parent} is read-only")
        busy = _busy_timeout_ms()
        try:
            if self.readonly:
                # Reading never writes, not even SQLite's -wal/-shm files: a store no process
                # has open (no -wal beside it) is read as an immutable file; one that a
                # writer has open, or that holds a write-ahead log, is read through its log.
                live = Path(f"{path}-wal").exists()
                conn = sqlite3.connect(
                    f"file:{quote(str(path))}?mode=ro" + ("" if live else "&immutable=1"),
                    uri=True,
                    check_same_thread=False,
                    isolation_level=None,
                    timeout=busy / 1000,
                )
            else:
                conn = sqlite3.connect(
                    str(path),
                    check_same_thread=False,
                    isolation_level=None,
                    timeout=busy / 1000,
                )
            conn.execute(f"PRAGMA busy_timeout={busy}")
            if not self.readonly and _is_empty(path):
                # Before anything is written (WAL mode included): it sizes the new file's pages.
                conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
            if not self.readonly:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()
                if mode is None or str(mode[0]).lower() != "wal":
                    raise StoreError(f"could not put {path} in WAL mode (got {mode})")
            conn.execute("PRAGMA synchronous=FULL")
            if not self.readonly:
                (page_size,) = conn.execute("PRAGMA page_size").fetchone()
                pages = wal_autocheckpoint_pages(int(page_size))
                conn.execute(f"PRAGMA wal_autocheckpoint={pages}")
            conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")  # 64 MiB of page cache
            conn.execute("PRAGMA temp_store=MEMORY")
            conn.execute("PRAGMA foreign_keys=OFF")
            # Touch the schema so a corrupt or foreign file fails here, not mid-write.
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            msg = str(exc)
            if "not a database" in msg:
                raise StoreCorruptError(
                    f"store file {path} is not a valid SQLite database ({msg}); "
                    "restore it from a backup or point --db at another file"
                ) from exc
            if "malformed" in msg or "corrupt" in msg:
                raise StoreCorruptError(damaged_message(path, msg)) from exc
            if "locked" in msg or "busy" in msg:
                raise StoreError(
                    f"store file {path} is locked by another process ({msg}); retry, or "
                    "stop the process that holds it"
                ) from exc
            if "readonly" in msg or "read-only" in msg:
                raise StoreError(f"store file {path} is read-only ({msg})") from exc
            raise StoreError(f"cannot open store {path}: {msg}") from exc
        return conn

    def _check_is_flightlog(self) -> None:
        row = self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='schema_migrations'"
        ).fetchone()
        if row is None:
            raise StoreCorruptError(f"{self.path} is a SQLite file but not a Flightlog store")

    def _connection(self) -> sqlite3.Connection:
        """This process's connection; a forked child opens its own (SQLite forbids sharing)."""
        if os.getpid() != self._pid:
            # Never use or close the parent's connection in the child: keep it referenced so
            # it is not finalised here, and open a fresh one.
            self._inherited.append(self._conn)
            self._conn = self._open()
            self._pid = os.getpid()
        return self._conn

    @contextmanager
    def transaction(self) -> Iterator[_SQLiteTx]:
        with self._lock:
            conn = self._connection()
            waited = time.perf_counter()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise self._translate(exc) from exc
            finally:
                self.lock_wait_seconds += time.perf_counter() - waited
            try:
                yield _SQLiteTx(conn)
            except BaseException as exc:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.DatabaseError) and _is_damage(exc):
                    raise self._translate(exc) from exc
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise self._translate(exc) from exc

    @contextmanager
    def read(self) -> Iterator[_SQLiteTx]:
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN")
            except sqlite3.DatabaseError as exc:
                raise self._translate(exc) from exc
            try:
                yield _SQLiteTx(conn)
            except sqlite3.DatabaseError as exc:
                if not _is_damage(exc):
                    raise  # a query's own problem (no such table, ...): the caller's to handle
                raise self._translate(exc) from exc
            finally:
                with suppress(sqlite3.Error):
                    conn.execute("COMMIT")

    def _translate(self, exc: sqlite3.Error) -> StoreError:
        msg = str(exc)
        if "readonly" in msg:
            return StoreError(f"store {self.path} is read-only: {msg}")
        if "locked" in msg or "busy" in msg:
            return StoreError(f"store {self.path} is locked by another process: {msg}")
        if _is_damage(exc):
            self.damage = msg
            return StoreCorruptError(damaged_message(self.path, msg))
        return StoreError(f"store {self.path}: {msg}")

    def integrity_problem(self) -> str | None:
        """What SQLite's ``quick_check`` finds wrong with the file (None when it is sound), or
        the damage a query ran into earlier. Reads every page: O(size of the store)."""
        if self.damage:
            return self.damage
        live = self.readonly is False or Path(f"{self.path}-wal").exists()
        uri = f"file:{quote(str(self.path))}?mode=ro" + ("" if live else "&immutable=1")
        try:  # its own connection: the check must not hold up this store's writes
            conn = sqlite3.connect(uri, uri=True, timeout=_busy_timeout_ms() / 1000)
            try:
                rows = conn.execute("PRAGMA quick_check(5)").fetchall()
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            if not _is_damage(exc):
                return None
            self.damage = str(exc)
            return self.damage
        problems = [str(r[0]) for r in rows if str(r[0]) != "ok"]
        if problems:
            self.damage = "; ".join(problems)
        return self.damage

    def _run_write(self, fn: Any) -> Any:
        try:
            with self.transaction() as tx:
                return fn(tx)
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file and truncate it, so that the
        ``.db`` file alone holds everything committed (what ``flightlog demo`` does before
        it exits). Best effort: a reader in another process can keep part of the log."""
        if self.readonly:
            return
        with self._lock, suppress(sqlite3.Error):
            self._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def close(self) -> None:
        self._run_close_hooks()
        with self._lock, suppress(sqlite3.Error):
            self._conn.close()
