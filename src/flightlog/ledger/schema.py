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
- ``ledger_entries.openings``: the salts and values behind the entry's commitments.
  Entries are found through the index on ``run_id``: a run's entries are appended
  together, so this index grows at its ends and stays cheap at millions of entries (an
  index over random record ids made appends I/O-bound there).
- ``ledger_openings``: openings of version-1 ledgers (moved inline by migration 2).
- ``ledger_checkpoints``: every signed checkpoint (C2SP signed note), by tree size.
- ``ledger_pending``: entries acknowledged but not yet in the tree (stores with concurrent
  writers: PostgreSQL). ``id`` comes from a sequence (ids commit out of order); ``entry``,
  ``leaf`` and ``openings`` as in ``ledger_entries``; a row without ``entry`` asks for the
  ``run.index`` entry of ``run_id`` (built when integrated). The integrator moves rows to
  ``ledger_entries`` in id order. Empty on SQLite, which extends the tree inline.
"""

from __future__ import annotations

from flightlog.store.base import Migration

NODE_SHIFT = 48
MIN_STORED_LEVEL = 4


def record_filter(ids: list[str], run_ids: list[str] | None) -> tuple[str, list[object]]:
    """SQL condition and parameters selecting the entries of these record ids. With the runs
    they belong to, the ``run_id`` index narrows the search; without, it is a scan."""
    cond = f"record_id IN ({', '.join('?' * len(ids))})"
    if not run_ids:
        return cond, list(ids)
    runs = sorted(set(run_ids))
    return f"run_id IN ({', '.join('?' * len(runs))}) AND {cond}", [*runs, *ids]


def migrations(dialect: str) -> tuple[Migration, ...]:
    # A 64-bit integer key: on SQLite "INTEGER PRIMARY KEY" is the 64-bit rowid itself (the
    # fastest table layout); PostgreSQL needs BIGINT for the same range.
    pk = "INTEGER PRIMARY KEY" if dialect == "sqlite" else "BIGINT PRIMARY KEY"
    # Ids drawn by concurrent writers: the rowid on SQLite, a sequence on PostgreSQL.
    serial = "INTEGER PRIMARY KEY" if dialect == "sqlite" else "BIGSERIAL PRIMARY KEY"
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
        Migration(
            3,
            (
                "DROP INDEX ledger_entries_rid",
                "CREATE INDEX ledger_entries_run ON ledger_entries (run_id)",
            ),
            "entries found by run (an index with locality)",
        ),
        Migration(
            4,
            (
                f"""CREATE TABLE ledger_pending (
                    id {serial},
                    kind TEXT NOT NULL,
                    record_id TEXT NOT NULL,
                    run_id TEXT,
                    created_ns BIGINT NOT NULL,
                    entry BLOB,
                    leaf BLOB,
                    openings BLOB
                )""",
            ),
            "pending entries: acknowledged, integrated into the tree by one integrator",
        ),
    )
