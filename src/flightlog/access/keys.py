"""API keys: who may ingest into, or read, which project of a store.

A key is ``flk_<id>_<secret>``: ``id`` is 12 public hex digits (shown by ``keys list``), the
secret 32 random bytes (256 bits, ``secrets.token_urlsafe``). Only SHA-256 of the whole key
is stored; a presented key is looked up by its id and its hash compared in constant time
(``hmac.compare_digest``). A high-entropy secret needs no slow password hash: guessing it is
no easier for having its SHA-256.

Scopes: ``ingest`` (``POST /v1/traces`` only), ``read`` (REST API, web UI) and ``admin``
(both, plus the server-wide pages ``/api/v1/ingest/stats`` and ``/audit``). Every key is
bound to one project: an ingest key stamps the runs it sends with it, a read key sees only
its runs.

Creating and revoking a key are appended to the audit ledger (``key.created``,
``key.revoked``) when one is attached to the store.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from flightlog.errors import InputError, NotFoundError
from flightlog.model import DEFAULT_PROJECT
from flightlog.store.base import Migration

if TYPE_CHECKING:
    from flightlog.store.base import Store

SCOPES: tuple[str, ...] = ("ingest", "read", "admin")
PREFIX = "flk_"
_KEY = re.compile(r"flk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

COMPONENT = "access"
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        (
            """CREATE TABLE api_keys (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                scope TEXT NOT NULL,
                project TEXT NOT NULL,
                hash TEXT NOT NULL,
                created_ns BIGINT NOT NULL,
                revoked_ns BIGINT
            )""",
        ),
        "API keys: SHA-256 of each key, its scope and project",
    ),
)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as stored (never its secret)."""

    id: str
    name: str
    scope: str
    project: str
    created_ns: int
    revoked_ns: int | None = None

    @property
    def active(self) -> bool:
        return self.revoked_ns is None

    def allows(self, scope: str) -> bool:
        """Whether this key may do what ``scope`` needs (admin may do everything)."""
        return self.scope == scope or self.scope == "admin"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def validate_name(name: str, what: str = "key name") -> str:
    if not _NAME.fullmatch(name or ""):
        raise InputError(
            f"{what} {name!r} is not valid: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def _row(r: Any) -> ApiKey:
    return ApiKey(
        id=str(r[0]),
        name=str(r[1]),
        scope=str(r[2]),
        project=str(r[3]),
        created_ns=int(r[4]),
        revoked_ns=None if r[5] is None else int(r[5]),
    )


_COLUMNS = "id, name, scope, project, created_ns, revoked_ns"


def create_key(
    store: Store, name: str, scope: str, project: str = DEFAULT_PROJECT
) -> tuple[ApiKey, str]:
    """Create a key; returns it and its secret form (shown once, never stored)."""
    validate_name(name)
    validate_name(project, "project")
    if scope not in SCOPES:
        raise InputError(f"scope {scope!r} is not one of {', '.join(SCOPES)}")
    store.migrate(COMPONENT, MIGRATIONS)
    kid = secrets.token_hex(6)
    secret = f"{PREFIX}{kid}_{secrets.token_urlsafe(32)}"
    key = ApiKey(id=kid, name=name, scope=scope, project=project, created_ns=time.time_ns())
    with store.transaction() as tx:
        tx.lock("api_keys")  # names are unique: check and insert under one lock
        if tx.fetchone("SELECT 1 FROM api_keys WHERE name = ?", (name,)) is not None:
            raise InputError(f"a key named {name!r} exists already; choose another name")
        tx.execute(
            "INSERT INTO api_keys (id, name, scope, project, hash, created_ns, revoked_ns) "
            "VALUES (?, ?, ?, ?, ?, ?, NULL)",
            (kid, name, scope, project, digest(secret), key.created_ns),
        )
        store.audit(
            tx, "key.created", {"id": kid, "name": name, "scope": scope, "project": project}
        )
    return key, secret


def list_keys(store: Store) -> list[ApiKey]:
    """Every key, revoked ones too, oldest first."""
    if store.schema_version(COMPONENT) == 0:
        return []
    with store.read() as tx:
        rows = tx.fetchall(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_ns, id")
    return [_row(r) for r in rows]


def revoke_key(store: Store, name_or_id: str) -> ApiKey:
    """Revoke the key with this name or id (revoking twice is not an error)."""
    if store.schema_version(COMPONENT) == 0:
        raise NotFoundError(f"no key {name_or_id!r}: no keys have been created")
    now = time.time_ns()
    with store.transaction() as tx:
        tx.lock("api_keys")  # revoked (and audited) once
        r = tx.fetchone(
            f"SELECT {_COLUMNS} FROM api_keys WHERE name = ? OR id = ?", (name_or_id, name_or_id)
        )
        if r is None:
            raise NotFoundError(f"no key named {name_or_id!r}; see flightlog keys list")
        key = _row(r)
        if key.revoked_ns is None:
            tx.execute("UPDATE api_keys SET revoked_ns = ? WHERE id = ?", (now, key.id))
            store.audit(tx, "key.revoked", {"id": key.id, "name": key.name})
            key = ApiKey(**(key.to_dict() | {"revoked_ns": now}))
    return key


class KeyRing:
    """Checks presented keys against a store (read per request, so a key created or revoked
    by ``flightlog keys`` in another process counts at once)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._enabled = False

    @property
    def locked(self) -> bool:
        """True once a key was seen (no store query needed any more)."""
        return self._enabled

    def enabled(self) -> bool:
        """Whether any key was ever created (then every request needs one). Once true it
        stays true: revoking every key locks the server, it does not open it."""
        if self._enabled:
            return True
        if self.store.schema_version(COMPONENT) == 0:
            return False  # no api_keys table: no key was ever created
        with self.store.read() as tx:
            row = tx.fetchone("SELECT 1 FROM api_keys LIMIT 1")
        self._enabled = row is not None
        return self._enabled

    def check(self, presented: str) -> ApiKey | None:
        """The active key ``presented`` is, or None (unknown, malformed or revoked)."""
        m = _KEY.fullmatch(presented.strip())
        if m is None:
            return None
        with self.store.read() as tx:
            r = tx.fetchone(f"SELECT {_COLUMNS}, hash FROM api_keys WHERE id = ?", (m.group(1),))
        if r is None:
            return None
        if not hmac.compare_digest(str(r[6]), digest(m.group(0))):
            return None
        key = _row(r)
        return key if key.active else None

    def get(self, key_id: str) -> ApiKey | None:
        """The active key with this id (a signed-in session re-checks its key each time)."""
        with self.store.read() as tx:
            r = tx.fetchone(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", (key_id,))
        key = _row(r) if r is not None else None
        return key if key is not None and key.active else None
