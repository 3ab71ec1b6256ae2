from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flightlog.app import open_store
from tests.integration.ledger._ledger_helpers import rid, run_batches


@pytest.fixture(autouse=True)
def _ledger_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "FLIGHTLOG_LEDGER",
        "FLIGHTLOG_LEDGER_KEY",
        "FLIGHTLOG_LEDGER_WITNESS",
        "FLIGHTLOG_LEDGER_CHECKPOINT_EVERY",
        "FLIGHTLOG_LEDGER_CHECKPOINT_SECONDS",
        "FLIGHTLOG_LEDGER_SENSITIVE",
        "FLIGHTLOG_LEDGER_RETENTION_DAYS",
        "FLIGHTLOG_URL",
    ):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "flightlog.db"


@pytest.fixture
def filled(db: Path) -> Iterator[Path]:
    """A store with three runs (12 records each) and one checkpoint."""
    store = open_store(f"sqlite:///{db}")
    for n in range(3):
        for b in run_batches(rid(n + 1), secret=f"person{n + 1}"):
            store.write(b)
    from flightlog.ledger import attach

    attach(store).checkpoint()
    store.close()
    yield db
