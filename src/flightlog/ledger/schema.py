"""The ledger's tables (component ``ledger`` in ``schema_migrations``), portable SQL.

- ``ledger_state``: one row: the log's origin, size and root (the cached tree head), and the
  outcome of the last ``audit verify``.
- ``ledger_entries``: one row per leaf: ``seq`` (leaf index), ``kind``, ``record_id``,
  ``run_id``, ``created_ns``, ``entry`` (the canonical JSON bytes) and ``leaf`` (its RFC 9162
  leaf hash, kept so proofs need not rehash).
- ``ledger_nodes``: the hash of every complete subtree of 2**level leaves for level >=
  ``MIN_STORED_LEVEL`` (4), keyed by ``level << 48 | index``; lower subtrees (at most 16
  leaves) are hashed from the leaves when a proof needs them, so a proof still costs
  O(log n) reads while appends write one interior hash per 16 leaves.
- ``ledger_entries.openings``: the salts and values behind the entry's commitments;
  ``rid_key`` (CRC-32 of ``record_id``) is the indexed lookup key.
- ``ledger_openings``: openings of version-1 ledgers (moved inline by migration 2).
- ``ledger_checkpoints``: every signed checkpoint (C2SP signed note), by tree size.
"""

from __future__ import annotations

from flightlog.store.base import Migration

NODE_SHIFT = 48
MIN_STORED_LEVEL = 4


def rid_key(record_id: str) -> int:
    """The indexed lookup key of a record id (CRC-32; the id itself is compared too)."""
    import zlib

    return zlib.crc32(record_id.encode())


def record_filter(ids: list[str]) -> tuple[str, list[object]]:
    """SQL condition and parameters selecting entries of these record ids."""
    keys = sorted({rid_key(i) for i in ids})
    sql = (
        f"rid_key IN ({', '.join('?' * len(keys))}) AND record_id IN ({', '.join('?' * len(ids))})"
    )
    return sql, [*keys, *ids]


def migrations(dialect: str) -> tuple[Migration, ...]:
    # A 64-bit integer key: on SQLite "INTEGER PRIMARY KEY" is the 64-bit rowid itself (the
    # fastest table layout); PostgreSQL needs BIGINT for the same range.
    pk = "INTEGER PRIMARY KEY" if dialect == "sqlite" else "BIGINT PRIMARY KEY"
    return (
        Migration(
            1,
            (
                f"""CREATE TABLE ledger_state (
                    id {pk},
                    origin TEXT NOT NULL,
                    size BIGINT NOT NULL,
                    root BLOB NOT NULL,
                    created_ns BIGINT NOT NULL,
                    verified_ns BIGINT,
                    verified_ok INTEGER,
                    verified_message TEXT
                )""",
                f"""CREATE TABLE ledger_entries (
                    seq {pk},
                    kind TEXT NOT NULL,
                    record_id TEXT NOT NULL,
                    run_id TEXT,
                    created_ns BIGINT NOT NULL,
                    entry BLOB,
                    leaf BLOB NOT NULL
                )""",
                "CREATE INDEX ledger_entries_record ON ledger_entries (record_id)",
                f"CREATE TABLE ledger_nodes (id {pk}, hash BLOB NOT NULL)",
                f"CREATE TABLE ledger_openings (seq {pk}, data BLOB NOT NULL)",
                f"""CREATE TABLE ledger_checkpoints (
                    size {pk},
                    created_ns BIGINT NOT NULL,
                    note TEXT NOT NULL
                )""",
            ),
            "audit ledger: entries, interior hashes, openings, checkpoints",
        ),
        Migration(
            2,
            (
                # Openings beside their entry (one insert per leaf, not two) and an integer
                # key for record lookups (a small index instead of one over long text ids).
                "ALTER TABLE ledger_entries ADD COLUMN openings BLOB",
                "ALTER TABLE ledger_entries ADD COLUMN rid_key BIGINT",
                "UPDATE ledger_entries SET openings = (SELECT o.data FROM ledger_openings o "
                "WHERE o.seq = ledger_entries.seq)",
                "DELETE FROM ledger_openings",
                "DROP INDEX ledger_entries_record",
                "CREATE INDEX ledger_entries_rid ON ledger_entries (rid_key)",
            ),
            "openings inline; integer record key",
        ),
    )
