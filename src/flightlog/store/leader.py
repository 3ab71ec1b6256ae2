"""Leader election on PostgreSQL: one process at a time holds a named role.

The role is a *session* advisory lock (``pg_try_advisory_lock``) held on a connection
dedicated to it. The lock lives exactly as long as that connection: if the holder's
process dies (even by SIGKILL) the server closes its connection, the lock is released, and
the next ``try_acquire`` by another process (on this machine or another server) succeeds.
The audit ledger uses it for its integrator (``flightlog.ledger.log``).

Leadership avoids duplicated work; it is not what keeps shared state correct: a leader
whose connection broke may still be finishing a transaction when another takes over, so
the work itself must be serialised by the database (the ledger locks its tree head row).
"""

from __future__ import annotations

import hashlib
import logging
import os
from contextlib import suppress
from typing import Any

log = logging.getLogger("flightlog.store")

CONNECT_TIMEOUT_S = 10
# Notice a dead network path within about a minute (TCP keepalives on the lock connection).
_KEEPALIVE = {"keepalives": 1, "keepalives_idle": 15, "keepalives_interval": 5}
_SERVER_KEEPALIVE = {
    "tcp_keepalives_idle": 15,
    "tcp_keepalives_interval": 5,
    "tcp_keepalives_count": 3,
}


APP_PREFIX = "flightlog-"
HOLDER_SQL = (
    "SELECT a.application_name, host(a.client_addr) FROM pg_locks l "
    "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
    "AND a.datname = current_database() AND a.application_name LIKE ?"
)


def holder(tx: Any, name: str) -> tuple[int, str] | None:
    """(process id, client address) of the process holding role ``name`` in this database,
    read through a store transaction ``tx``; None when nobody holds it."""
    row = tx.fetchone(HOLDER_SQL, (f"{APP_PREFIX}{name}:%",))
    if row is None:
        return None
    pid = str(row[0]).rsplit(":", 1)[-1]
    return (int(pid) if pid.isdigit() else -1), str(row[1] or "local socket")


class Leadership:
    """The role ``name`` in the PostgreSQL database at ``url`` (one lock per database and
    schema). Not thread-safe: one thread (the role's worker) uses it."""

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.name = name
        self._conn: Any = None
        self._key: int | None = None
        self._held = False
        self._pid = os.getpid()

    @property
    def held(self) -> bool:
        """Whether this process held the role when it last looked (``check`` asks)."""
        return self._held and self._pid == os.getpid()

    def try_acquire(self) -> bool:
        """Take the role if nobody holds it; never waits. True if this process holds it."""
        import psycopg

        if self.held:
            return self.check()
        try:
            conn = self._connection()
            got = conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
        except psycopg.Error as exc:
            log.debug("leader %s: %s", self.name, exc)
            self._drop()
            return False
        self._held = bool(got and got[0])
        if self._held:
            log.info("this process (pid %d) now holds the %s role", os.getpid(), self.name)
        return self._held

    def check(self) -> bool:
        """Ask the server whether the role is still this process's (the lock connection
        may have been lost)."""
        import psycopg

        if not self.held:
            return False
        try:
            row = self._conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND pid = pg_backend_pid() AND classid::bigint = (%s::bigint >> 32) "
                "AND objid::bigint = (%s::bigint & 4294967295) AND objsubid = 1",
                (self._key, self._key),
            ).fetchone()
        except psycopg.Error:
            self._drop()
            return False
        if not row or not row[0]:
            self._drop()
            return False
        return True

    def release(self) -> None:
        """Give the role up (closing the connection releases the lock)."""
        self._drop()

    def _connection(self) -> Any:
        import psycopg

        if self._pid != os.getpid():  # forked: the parent's connection is not ours
            self._conn, self._held, self._pid = None, False, os.getpid()
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        self._drop()
        kwargs: dict[str, Any] = {"autocommit": True, **_KEEPALIVE}
        if "connect_timeout" not in self.url:
            kwargs["connect_timeout"] = CONNECT_TIMEOUT_S
        if "application_name" not in self.url:  # says who holds the role (``holder``)
            kwargs["application_name"] = f"{APP_PREFIX}{self.name}:{os.getpid()}"
        conn = psycopg.connect(self.url, **kwargs)
        try:
            # The server, too, notices a vanished holder (power loss, a partition) within
            # about 30 s and ends its session, which releases the role.
            for setting, value in _SERVER_KEEPALIVE.items():
                conn.execute(f"SET {setting} = {int(value)}")
            row = conn.execute("SELECT current_database(), current_schema()").fetchone()
        except psycopg.Error:
            conn.close()
            raise
        ident = f"flightlog:{row[0] if row else ''}:{row[1] if row else ''}:{self.name}"
        self._key = int.from_bytes(hashlib.sha256(ident.encode()).digest()[:8], "big") >> 1
        self._conn = conn
        return conn

    def _drop(self) -> None:
        conn, self._conn, self._held = self._conn, None, False
        if conn is None or self._pid != os.getpid():
            return  # a parent's connection after fork: never touch it
        with suppress(Exception):
            conn.close()
