"""Time partitions of ``runs`` and ``steps`` on PostgreSQL, so retention drops partitions.

**Partition key.** Both tables are declaratively partitioned by range of ``part_day``: the
first day (days since the Unix epoch) of the time bucket a run was *first written* in, the
bucket of the earliest start time that first batch carried for it (the run's own, or its
earliest step's when the steps come first), clamped to [2000-01-01, now]. It is decided
once per run, by the first writer, and kept in ``run_days (run_id PRIMARY KEY, part_day)``
(``INSERT ... ON CONFLICT DO NOTHING``; later writers read it ``FOR KEY SHARE``). So the
key never changes for a row (a run whose start later moves earlier stays where it is), a
run and all its steps share one partition, and the primary keys ``(id, part_day)`` and
``(run_id, id, part_day)`` are unique exactly when ``id`` and ``(run_id, id)`` are: the
store's ``ON CONFLICT`` upserts name them and work as on an unpartitioned table.

**Width.** Buckets are ``width_days`` wide, aligned to the epoch, fixed per database when
the partitions are first made (``$FLIGHTLOG_PG_PARTITION_DAYS``, default 7; kept in
``partition_width``). Partitions are named ``runs_pYYYYMMDD`` / ``steps_pYYYYMMDD`` after
their first day.

**Maintenance.** The current bucket and ``AHEAD`` more are created when a store is opened
for writing, and by the first write that finds the next one missing (``create``, under the
named lock ``partitions``; creating a partition locks its parent table, so it waits for
the write transactions in progress), each bucket in its own transaction; one that fails
is tried again later (``PostgresStore._ensure_partitions``). A batch of late or imported
data whose bucket has no partition creates it before its write transaction if that takes
no waiting (a short lock timeout); otherwise, or if the default partition already holds
rows of that bucket (PostgreSQL then refuses the partition; the rows are not moved), its
rows go to the ``*_default`` partitions, which retention deletes from row by row.

**Retention** (``drop_before``): every partition pair whose bucket ends at or before the
cut-off day, and whose runs (and steps without a stored run) all started before the cut-off,
is dropped whole, with its ``run_days`` rows and its runs' edges and findings; the runs that
started before the cut-off elsewhere (the partition straddling it, odd clocks) are deleted
row by row by the caller, as on SQLite. The row work comes first; the partitions are
dropped at the end of the transaction, under the tables' lock (``drop_before``).
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from flightlog.errors import ConfigurationError
from flightlog.store.base import chunked

DAY_NS = 86_400 * 1_000_000_000
DEFAULT_WIDTH_DAYS = 7
AHEAD = 2  # buckets created ahead of the current one
FLOOR_DAY = 10_957  # 2000-01-01: earlier start times go in that bucket
ENV = "FLIGHTLOG_PG_PARTITION_DAYS"
TABLES = ("steps", "runs")  # the order writers write them, and retention locks them
COMPONENT = "partitions"  # in schema_migrations
_BOUND = re.compile(r"FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")


def width_from_env() -> int:
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return DEFAULT_WIDTH_DAYS
    try:
        width = int(raw)
    except ValueError:
        width = 0
    if not 1 <= width <= 366:
        raise ConfigurationError(f"{ENV} must be a whole number of days from 1 to 366, not {raw!r}")
    return width


def bucket(start_ns: int, width: int, now_ns: int) -> int:
    """The first day of the bucket a run first seen with ``start_ns`` goes in."""
    day = min(max(start_ns, 0), now_ns) // DAY_NS
    day = max(day, FLOOR_DAY)
    return day // width * width


def name(table: str, day: int) -> str:
    return f"{table}_p{(_dt.date(1970, 1, 1) + _dt.timedelta(days=day)):%Y%m%d}"


def width(tx: Any) -> int:
    row = tx.fetchone("SELECT width_days FROM partition_width")
    return int(row[0]) if row else DEFAULT_WIDTH_DAYS


def existing(tx: Any, table: str = "runs") -> dict[int, tuple[int, str]]:
    """{first day: (end day, partition name)} of ``table``'s partitions."""
    out: dict[int, tuple[int, str]] = {}
    for relname, bound in tx.fetchall(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(?)",
        (table,),
    ):
        m = _BOUND.search(str(bound or ""))
        if m:
            out[int(m.group(1))] = (int(m.group(2)), str(relname))
    return out


def ahead(width: int, now_ns: int) -> set[int]:
    """The current bucket and ``AHEAD`` more."""
    first = bucket(now_ns, width, now_ns)
    return {first + i * width for i in range(AHEAD + 1)}


def create(tx: Any, days: Iterable[int], width: int) -> None:
    """Create the partitions of both tables for the buckets starting on ``days`` (each
    takes an ACCESS EXCLUSIVE lock on its parent table until the transaction ends)."""
    for day in sorted(set(days)):
        for table in TABLES:
            tx.execute(
                f"CREATE TABLE IF NOT EXISTS {name(table, day)} PARTITION OF {table} "
                f"FOR VALUES FROM ({int(day)}) TO ({int(day + width)})"
            )


def migrate(tx: Any, width: int, now_ns: int | None = None) -> None:
    """Turn the unpartitioned ``runs`` and ``steps`` of an existing store into partitioned
    tables, keeping every row and index (run under the store-wide migration lock)."""
    now = time.time_ns() if now_ns is None else now_ns
    tx.execute("CREATE TABLE partition_width (width_days BIGINT NOT NULL)")
    tx.execute("INSERT INTO partition_width (width_days) VALUES (?)", (width,))
    tx.execute("CREATE TABLE run_days (run_id TEXT PRIMARY KEY, part_day BIGINT NOT NULL)")
    tx.execute("CREATE INDEX run_days_day ON run_days (part_day)")
    # The bucket of each stored run: its start (or its steps' earliest, without a run row).
    day = "(GREATEST(LEAST(GREATEST({x}, 0), ?) / ?, ?) / ? * ?)"
    args = (now, DAY_NS, FLOOR_DAY, width, width)
    tx.execute(
        f"INSERT INTO run_days (run_id, part_day) SELECT id, {day.format(x='started_ns')} "
        "FROM runs",
        args,
    )
    tx.execute(
        "INSERT INTO run_days (run_id, part_day) "
        f"SELECT run_id, {day.format(x='MIN(started_ns)')} FROM steps GROUP BY run_id "
        "ON CONFLICT (run_id) DO NOTHING",
        args,
    )
    keys = {"runs": "id, part_day", "steps": "run_id, id, part_day"}
    indexes: list[str] = []
    for table in TABLES:
        # Every secondary index as it is defined now, recreated on the partitioned table.
        for index, definition in tx.fetchall(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = to_regclass(?) AND NOT i.indisprimary ORDER BY c.relname",
            (table,),
        ):
            tx.execute(f'DROP INDEX "{index}"')
            indexes.append(str(definition))
        tx.execute(f"ALTER TABLE {table} RENAME TO {table}_unpartitioned")
        tx.execute(
            f"ALTER TABLE {table}_unpartitioned RENAME CONSTRAINT {table}_pkey "
            f"TO {table}_unpartitioned_pkey"
        )
        # A row inserted by hand, without ``part_day``, goes in the current bucket (the
        # store always sets it, from ``run_days``).
        tx.execute(
            f"CREATE TABLE {table} (LIKE {table}_unpartitioned INCLUDING DEFAULTS "
            "INCLUDING CONSTRAINTS, part_day BIGINT NOT NULL DEFAULT "
            f"(EXTRACT(EPOCH FROM now())::BIGINT / 86400 / {int(width)} * {int(width)})) "
            "PARTITION BY RANGE (part_day)"
        )
        tx.execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({keys[table]})")
    for table in TABLES:
        tx.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
    days = {int(r[0]) for r in tx.fetchall("SELECT DISTINCT part_day FROM run_days")}
    create(tx, days | ahead(width, now), width)
    tx.execute(
        "INSERT INTO steps SELECT o.*, d.part_day FROM steps_unpartitioned o "
        "JOIN run_days d ON d.run_id = o.run_id"
    )
    tx.execute(
        "INSERT INTO runs SELECT o.*, d.part_day FROM runs_unpartitioned o "
        "JOIN run_days d ON d.run_id = o.id"
    )
    for table in TABLES:
        tx.execute(f"DROP TABLE {table}_unpartitioned")
    for definition in indexes:
        tx.execute(definition)


def run_days(tx: Any, wanted: Mapping[str, int]) -> dict[str, int]:
    """{run id: part_day} for the runs of a write: the stored day of each run already
    seen (its ``run_days`` row locked ``FOR KEY SHARE``, so retention cannot drop its
    partition before this transaction ends), else ``wanted[run]``, recorded now. Ids in
    sorted order, so concurrent first writers of the same runs lock them in one order."""
    out: dict[str, int] = {}
    ids = sorted(wanted)
    for _ in range(8):
        if not ids:
            return out
        rows = tx.fetchall_native(  # arrays sent binary (%b): cheaper to encode
            "WITH new AS (INSERT INTO run_days (run_id, part_day) "
            "SELECT * FROM unnest(%b::text[], %b::bigint[]) ON CONFLICT (run_id) DO NOTHING "
            "RETURNING run_id, part_day) "
            "SELECT run_id, part_day FROM new UNION ALL SELECT run_id, part_day FROM "
            "(SELECT run_id, part_day FROM run_days WHERE run_id = ANY(%b::text[]) "
            "FOR KEY SHARE) old",
            (ids, [wanted[i] for i in ids], ids),
        )
        out.update((str(r), int(d)) for r, d in rows)
        # A run another writer recorded after this statement's snapshot began (its insert
        # was waited for) is read by the next statement.
        ids = [i for i in ids if i not in out]
    raise RuntimeError(f"run_days: no partition day settled for {ids[:3]}")


def _survivor(tx: Any, runs_part: str, steps_part: str, before_ns: int) -> bool:
    """Whether a partition pair holds a run, or a step without a stored run, that started
    at or after the cut-off (it must stay)."""
    row = tx.fetchone(
        f"SELECT 1 FROM {runs_part} WHERE started_ns >= ? UNION ALL "
        f"SELECT 1 FROM {steps_part} s WHERE s.started_ns >= ? AND NOT EXISTS "
        f"(SELECT 1 FROM {runs_part} r WHERE r.id = s.run_id) LIMIT 1",
        (before_ns, before_ns),
    )
    return row is not None


def _ids(tx: Any, runs_part: str, steps_part: str) -> tuple[set[str], int]:
    """The ids of the runs with records in a partition pair, and how many runs it stores."""
    ids = {
        str(r[0])
        for r in tx.fetchall(
            f"SELECT DISTINCT run_id FROM {steps_part} UNION SELECT id FROM {runs_part}"
        )
    }
    row = tx.fetchone(f"SELECT count(*) FROM {runs_part}")
    return ids, int(row[0]) if row else 0


def drop_before(tx: Any, before_ns: int) -> tuple[list[str], int]:
    """Retention: the partitions wholly before the cut-off (see the module's text) are
    dropped at the end of the transaction (``tx.at_commit``); the ids of every run whose
    records they hold, and how many stored runs that is. The row work (``run_days``, edges,
    findings, and the caller's) is done first, with row locks only; the ACCESS EXCLUSIVE
    locks on ``steps`` and ``runs`` are taken just before the commit, to check that no
    record came in meanwhile and drop the partitions (a few milliseconds' stall for
    writers and readers)."""
    cut_day = before_ns // DAY_NS
    runs = existing(tx, "runs")
    steps = existing(tx, "steps")
    pairs = [
        (day, end, part, steps[day][1])
        for day, (end, part) in sorted(runs.items())
        if end <= cut_day and day in steps
    ]
    pairs = [p for p in pairs if not _survivor(tx, p[2], p[3], before_ns)]
    if not pairs:
        return [], 0
    # run_days first: a writer of one of these runs holds its row FOR KEY SHARE until it
    # commits (waited for here); a later writer of one waits for this transaction, then
    # records the run anew, with the bucket of its new batch. A run first recorded in one
    # of these buckets by a writer that commits before the lock below is found there:
    # this transaction then starts over, and lists it.
    ids: set[str] = set()
    count = 0
    for day, end, runs_part, steps_part in pairs:
        ids.update(
            str(r[0])
            for r in tx.fetchall(
                "DELETE FROM run_days WHERE part_day >= ? AND part_day < ? RETURNING run_id",
                (day, end),
            )
        )
        held, stored = _ids(tx, runs_part, steps_part)
        ids |= held
        count += stored
    listed = sorted(ids)
    for part in chunked(listed, 5000):
        tx.execute("DELETE FROM run_days WHERE run_id = ANY(?)", (part,))
        tx.execute("DELETE FROM edges WHERE run_id = ANY(?)", (part,))
        tx.execute("DELETE FROM findings WHERE run_id = ANY(?)", (part,))

    def finish() -> None:
        import psycopg

        tx.execute("LOCK TABLE steps, runs IN ACCESS EXCLUSIVE MODE")
        stored = 0
        for _, _, runs_part, steps_part in pairs:
            held, n = _ids(tx, runs_part, steps_part)
            stored += n
            if _survivor(tx, runs_part, steps_part, before_ns) or not held <= ids:
                # Written between the first look and the lock: start over (the caller
                # retries this as a serialization failure; the next look lists the run,
                # or keeps the partition).
                raise psycopg.errors.SerializationFailure(
                    f"partition {runs_part} gained a record since the first look"
                )
        if stored != count:
            raise psycopg.errors.SerializationFailure(
                "a partition to drop gained a run since the first look"
            )
        for _, _, runs_part, steps_part in pairs:
            tx.execute(f"DROP TABLE {steps_part}")
            tx.execute(f"DROP TABLE {runs_part}")

    tx.at_commit(finish)
    return listed, count
