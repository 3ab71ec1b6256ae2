"""Stores: where records live. ``open_store(url)`` picks the backend from the URL scheme.

- ``sqlite:///path/to/file.db`` (the embedded default)
- ``postgresql://user@host:port/db`` (scale-out; needs ``pip install flightlog[postgres]``)
"""

from __future__ import annotations

import os
import re

from flightlog.errors import ConfigurationError
from flightlog.store.base import Migration, RunQuery, Store, Tx, WriteHook

DEFAULT_URL = "sqlite:///flightlog.db"

__all__ = [
    "DEFAULT_URL",
    "Migration",
    "RunQuery",
    "Store",
    "Tx",
    "WriteHook",
    "default_url",
    "open_store",
]


def default_url() -> str:
    """``$FLIGHTLOG_URL`` if set, else ``sqlite:///flightlog.db``."""
    return os.environ.get("FLIGHTLOG_URL") or DEFAULT_URL


def normalize_url(url: str) -> str:
    """Accept a bare file path as shorthand for ``sqlite:///path``."""
    url = url.strip()
    if "://" not in url:
        if not url:
            raise ConfigurationError("empty store URL; expected sqlite:///file.db")
        if _HOST_PORT.fullmatch(url):
            # localhost:4318 is a server without its scheme, not a file to create.
            raise ConfigurationError(
                f"store URL {url!r} looks like a server address, not a file: "
                f"flightlog.configure() sends to a server as http://{url.rstrip('/')}; a SQLite "
                f"file of that name is sqlite:///{url}"
            )
        return "sqlite:///" + url
    return url


_HOST_PORT = re.compile(r"(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\]):\d{1,5}/?")


def open_store(url: str | None = None, *, readonly: bool = False, create: bool = True) -> Store:
    """Open the store at ``url``, migrating it to this version's schema. Nothing else: the
    audit ledger and the other capabilities are wired by ``flightlog.app.open_store``, which
    every front door uses.

    ``readonly``: never write (no migrations, no files); the store must
    exist and be current. ``create=False``: a SQLite file that does not exist is an error
    instead of a new, empty store (what commands that read or change existing records use,
    so a typo in ``--db`` is reported rather than silently made into a database).
    """
    url = normalize_url(url or default_url())
    scheme = url.split("://", 1)[0].lower()
    if scheme == "sqlite":
        from flightlog.store.sqlite import SQLiteStore

        return SQLiteStore(url, readonly=readonly, create=create)
    if scheme in ("postgresql", "postgres"):
        try:
            from flightlog.store.postgres import PostgresStore
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise ConfigurationError(
                f"store URL {url!r} needs the PostgreSQL driver: pip install 'flightlog[postgres]'"
                f" ({exc})"
            ) from exc
        return PostgresStore(url, readonly=readonly)
    raise ConfigurationError(
        f"unsupported store URL {url!r}; expected sqlite:///path.db or postgresql://..."
    )
