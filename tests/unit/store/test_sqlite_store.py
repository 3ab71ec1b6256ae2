"""What only the SQLite store does (shared behaviour is in ``test_store.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

import flightlog
from flightlog.app import open_store
from flightlog.model import Batch, Run


def test_readonly_open_of_a_foreign_sqlite_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    p = tmp_path / "other.db"
    sqlite3.connect(p).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(flightlog.StoreCorruptError, match="not a Flightlog store"):
        open_store(f"sqlite:///{p}", readonly=True)


def test_the_write_ahead_log_is_checkpointed_at_the_set_length(tmp_path: Path) -> None:
    """A writing store copies its log into the file every ``WAL_AUTOCHECKPOINT_PAGES``
    pages; closing it still leaves the file alone holding everything."""
    from flightlog.store.sqlite import WAL_AUTOCHECKPOINT_PAGES, SQLiteStore

    db = tmp_path / "w.db"
    store = SQLiteStore(f"sqlite:///{db}")
    with store.read() as tx:
        (pages,) = tx.fetchone("PRAGMA wal_autocheckpoint") or (0,)
    assert pages == WAL_AUTOCHECKPOINT_PAGES
    store.write(Batch(runs=[Run(id="a" * 32, workflow="w", started_ns=1)]))
    store.close()
    assert not (tmp_path / "w.db-wal").exists() or (tmp_path / "w.db-wal").stat().st_size == 0
    reader = SQLiteStore(f"sqlite:///{db}", readonly=True)
    assert reader.get_run("a" * 32) is not None
    reader.close()
