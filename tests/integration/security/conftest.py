"""The security suite: each attack on the records or the audit ledger, against a real
SQLite file, a real PostgreSQL database (tests/pg.py) or a real server on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _ledger_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in (
        "FLIGHTLOG_LEDGER",
        "FLIGHTLOG_LEDGER_WITNESS",
        "FLIGHTLOG_LEDGER_CHECKPOINT_EVERY",
        "FLIGHTLOG_LEDGER_CHECKPOINT_SECONDS",
        "FLIGHTLOG_LEDGER_SENSITIVE",
        "FLIGHTLOG_URL",
    ):
        monkeypatch.delenv(var, raising=False)
    # Keys go to this test's own configuration directory, never the user's.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("FLIGHTLOG_LEDGER_KEY", str(tmp_path / "keys" / "ledger.key"))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'flightlog.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


from tests.integration.server.conftest import server, server_factory  # noqa: E402, F401
