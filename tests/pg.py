"""A throwaway PostgreSQL database per test, on the local server (127.0.0.1:5432, user
postgres, trust authentication; ``$FLIGHTLOG_TEST_PG`` overrides the admin URL).

Each test gets ``flightlog_test_<random>``, created empty and dropped afterwards, so tests
never see each other's rows. Tests skip, saying why, only when the server is unreachable.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

ADMIN_URL = os.environ.get("FLIGHTLOG_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _with_db(url: str, db: str) -> str:
    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, "/" + db, p.query, p.fragment))


def unreachable_reason() -> str | None:
    """Why the test server cannot be used, or None when it can."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'flightlog[postgres]')"
    try:
        psycopg.connect(ADMIN_URL, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        return f"PostgreSQL server at {ADMIN_URL} is unreachable: {str(exc).strip()}"
    return None


def create_database() -> str:
    """Create an empty ``flightlog_test_<random>``; return its URL."""
    import psycopg

    name = f"flightlog_test_{secrets.token_hex(6)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return _with_db(ADMIN_URL, name)


def drop_database(url: str) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    assert name.startswith("flightlog_test_"), name
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def temporary_database() -> Iterator[str]:
    url = create_database()
    try:
        yield url
    finally:
        drop_database(url)
