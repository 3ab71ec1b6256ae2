"""A throwaway PostgreSQL database per test, on the local server (127.0.0.1:5432, user
postgres, trust authentication; ``$FLIGHTLOG_TEST_PG`` overrides the admin URL, ``off`` turns
the PostgreSQL tests off).

Each test gets ``flightlog_test_<unix time>_<random>``, created empty and dropped afterwards,
so tests never see each other's rows. A test run that was killed cannot drop its database;
the next run drops those more than a day old (``sweep_stale``). Tests skip, saying why, only
when the server is unreachable.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

ADMIN_URL = os.environ.get("FLIGHTLOG_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _with_db(url: str, db: str) -> str:
    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, "/" + db, p.query, p.fragment))


def unreachable_reason() -> str | None:
    """Why the test server cannot be used, or None when it can."""
    if ADMIN_URL.strip().lower() == "off":
        return "PostgreSQL tests are turned off ($FLIGHTLOG_TEST_PG=off)"
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

    name = f"flightlog_test_{int(time.time())}_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return _with_db(ADMIN_URL, name)


def sweep_stale(max_age_s: float = 86_400) -> list[str]:
    """Drop test databases left by killed runs (by the time in their name); return them."""
    import psycopg

    dropped = []
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE 'flightlog\\_test\\_%'"
            )
        ]
        for name in names:
            m = re.fullmatch(r"flightlog_test_(\d{10})_[0-9a-f]{8}", name)
            if m and time.time() - int(m.group(1)) > max_age_s:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                dropped.append(name)
    return dropped


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
