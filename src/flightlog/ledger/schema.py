"""The ledger's tables (component ``ledger`` in ``schema_migrations``), portable SQL.

- ``ledger_state``: one row: the log's origin, size and root (the cached tree head), and the
  outcome of the last ``audit verify``.
- ``ledger_entries``: one row per leaf: ``seq`` (leaf index), ``kind``, ``record_id``,
  ``run_id``, ``created_ns``, ``entry`` (the canonical JSON bytes) and ``leaf`` (its RFC 9162
  leaf hash, kept so proofs need not rehash).
- ``ledger_nodes``: the hash of every complete subtree of 2**level leaves (level >= 1), keyed
  by ``level << 48 | index``; with the leaves these make any proof O(log n) reads.
- ``ledger_openings``: per entry, the salts and values behind its commitments.
- ``ledger_checkpoints``: every signed checkpoint (C2SP signed note), by tree size.
"""

from __future__ import annotations

from flightlog.store.base import Migration

NODE_SHIFT = 48


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
    )
