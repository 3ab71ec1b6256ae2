"""Every store test runs against both dialects: the SQLite file and a PostgreSQL database."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'flightlog.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url
