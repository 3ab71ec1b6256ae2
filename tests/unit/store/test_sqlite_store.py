"""What only the SQLite store does (shared behaviour is in ``test_store.py``)."""

from __future__ import annotations

import pytest

import flightlog
from flightlog.app import open_store


def test_readonly_open_of_a_foreign_sqlite_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    p = tmp_path / "other.db"
    sqlite3.connect(p).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(flightlog.StoreCorruptError, match="not a Flightlog store"):
        open_store(f"sqlite:///{p}", readonly=True)
