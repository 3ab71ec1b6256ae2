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


def _settings(store: object) -> tuple[int, int, int]:
    """(page_size, wal_autocheckpoint, cache_size) of ``store``'s connection."""
    with store.read() as tx:  # type: ignore[attr-defined]
        return tuple(  # type: ignore[return-value]
            int((tx.fetchone(f"PRAGMA {name}") or (0,))[0])
            for name in ("page_size", "wal_autocheckpoint", "cache_size")
        )


def _header_page_size(db: Path) -> int:
    """The page size written in the file's header (bytes 16-17; 1 means 65,536)."""
    with db.open("rb") as f:
        raw = int.from_bytes(f.read(100)[16:18], "big")
    return 65_536 if raw == 1 else raw


def test_the_write_ahead_log_is_checkpointed_at_the_set_length(tmp_path: Path) -> None:
    """A new store has ``PAGE_SIZE`` pages and copies its log into the file once it holds
    ``WAL_AUTOCHECKPOINT_BYTES`` (counted in its pages); closing it still leaves the file
    alone holding everything."""
    from flightlog.store.sqlite import (
        CACHE_KIB,
        PAGE_SIZE,
        WAL_AUTOCHECKPOINT_BYTES,
        SQLiteStore,
    )

    db = tmp_path / "w.db"
    store = SQLiteStore(f"sqlite:///{db}")
    assert store.created
    assert PAGE_SIZE == 16_384
    assert _settings(store) == (PAGE_SIZE, WAL_AUTOCHECKPOINT_BYTES // PAGE_SIZE, -CACHE_KIB)
    store.write(Batch(runs=[Run(id="a" * 32, workflow="w", started_ns=1)]))
    store.close()
    assert not (tmp_path / "w.db-wal").exists() or (tmp_path / "w.db-wal").stat().st_size == 0
    assert _header_page_size(db) == PAGE_SIZE
    reader = SQLiteStore(f"sqlite:///{db}", readonly=True)
    assert reader.get_run("a" * 32) is not None
    reader.close()
    again = SQLiteStore(f"sqlite:///{db}")
    assert not again.created
    assert _settings(again)[:2] == (PAGE_SIZE, WAL_AUTOCHECKPOINT_BYTES // PAGE_SIZE)
    again.close()


def test_a_store_made_with_4k_pages_keeps_them(tmp_path: Path) -> None:
    """A store created before new stores got 16 KiB pages (SQLite's default 4 KiB, made here
    with the sqlite3 module as such a version made it: pages set by the first table, then
    WAL) opens, is written and read, and keeps its pages; its log bound in bytes is the
    same, so it is checkpointed every 10,000 pages, and its page cache is as large."""
    import sqlite3

    from flightlog.store.sqlite import CACHE_KIB, WAL_AUTOCHECKPOINT_BYTES, SQLiteStore

    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE unrelated (x)")  # fixes the file's pages (SQLite's 4 KiB)
    conn.close()
    assert _header_page_size(db) == 4096
    store = SQLiteStore(f"sqlite:///{db}")  # migrates: Flightlog's tables on 4 KiB pages
    assert not store.created
    assert _settings(store) == (4096, 10_000, -CACHE_KIB)
    assert WAL_AUTOCHECKPOINT_BYTES // 4096 == 10_000
    for i in range(50):
        store.write(Batch(runs=[Run(id=f"{i:032x}", workflow="w", started_ns=i + 1)]))
    store.close()
    assert _header_page_size(db) == 4096
    reopened = SQLiteStore(f"sqlite:///{db}")
    assert _settings(reopened)[:2] == (4096, 10_000)
    assert reopened.get_run(f"{49:032x}") is not None
    with reopened.read() as tx:
        assert tx.fetchone("PRAGMA integrity_check") == ("ok",)
    reopened.close()
    assert _header_page_size(db) == 4096


def test_an_empty_file_becomes_a_store_with_new_pages(tmp_path: Path) -> None:
    """A 0-byte file (``touch``ed) holds no database yet: it gets a new store's pages."""
    from flightlog.store.sqlite import PAGE_SIZE, SQLiteStore

    db = tmp_path / "empty.db"
    db.touch()
    store = SQLiteStore(f"sqlite:///{db}")
    assert _settings(store)[0] == PAGE_SIZE
    store.close()
    assert _header_page_size(db) == PAGE_SIZE


def test_wal_autocheckpoint_pages_follow_the_page_size() -> None:
    from flightlog.store.sqlite import wal_autocheckpoint_pages

    assert wal_autocheckpoint_pages(4096) == 10_000
    assert wal_autocheckpoint_pages(16_384) == 2_500
    assert wal_autocheckpoint_pages(65_536) == 625
    assert wal_autocheckpoint_pages(512) == 80_000


def test_none_and_bytes_are_bound_without_adaptation(tmp_path: Path) -> None:
    """The SQLite store registers pass-through adapters for ``None`` and ``bytes``
    (``store.sqlite.bind_directly``: sqlite3 otherwise tries, and fails, to adapt every such
    parameter, a few per cent of the ingestion writer's CPU). Values are stored as before:
    NULL and BLOB; a ``bytes`` subclass is still adapted by its own ``__conform__``; an
    adapter the program registered is kept."""
    import sqlite3

    from flightlog.store.sqlite import SQLiteStore, bind_directly

    proto = sqlite3.PrepareProtocol
    none_adapter = sqlite3.adapters[(type(None), proto)]
    bytes_adapter = sqlite3.adapters[(bytes, proto)]
    blob = b"\x00payload" * 10
    assert none_adapter(None) is None
    assert bytes_adapter(blob) is blob

    class Conforming(bytes):
        def __conform__(self, protocol: object) -> str:
            return "conformed"

    store = SQLiteStore(f"sqlite:///{tmp_path / 'b.db'}")
    with store.read() as tx:
        row = tx.fetchone(
            "SELECT ?, typeof(?), ?, typeof(?), ?",
            (None, None, blob, blob, Conforming(b"x")),
        )
    store.close()
    assert row == (None, "null", blob, "blob", "conformed")

    def own(value: bytes) -> bytes:
        return value

    mine: dict[object, object] = {(bytes, proto): own}
    bind_directly(mine)
    assert mine[(bytes, proto)] is own
    assert mine[(type(None), proto)](None) is None
