"""The ``Store`` protocol: what every backend (SQLite, PostgreSQL) provides.

The interface speaks in records (``flightlog.model``), never in SQL dialects. Capabilities
that keep their own tables (the audit ledger, incidents, the notification outbox) use the
low-level part of the protocol: ``migrate`` registers a component's versioned schema and
``transaction`` gives a connection-like handle whose SQL uses ``?`` placeholders (a
PostgreSQL store rewrites them). Portable SQL only: ``INSERT ... ON CONFLICT``, ``BIGINT``,
``TEXT``, ``DOUBLE PRECISION``, ``BLOB`` (mapped to ``BYTEA`` on PostgreSQL).

Write hooks (``add_write_hook``) run inside the transaction that stores a batch, so a
capability such as the ledger can append its leaves atomically with the records.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from flightlog.model import Batch, Edge, Finding, Run, RunRecord, Step

_T = TypeVar("_T")

if TYPE_CHECKING:
    from flightlog.store.facts import Conflict


@runtime_checkable
class Tx(Protocol):
    """A transaction handle: SQL with ``?`` placeholders."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any: ...

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None: ...

    def lock(self, name: str) -> None:
        """Hold the exclusive lock ``name`` until this transaction ends (commit or rollback).

        For read-before-write that no key or constraint protects (the next id of a table, the
        incident a failure joins): take the lock first, then read and write. Re-taking a held
        lock is free. PostgreSQL: ``pg_advisory_xact_lock`` on a 63-bit key of database,
        schema and ``name``; SQLite: a no-op (its write transactions are already one at a
        time). Take named locks before writing rows, in a fixed order, to avoid deadlocks.
        """


WriteHook = Callable[[Tx, Batch], None]


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of a component's schema: ``version`` is 1, 2, ...; ``statements`` run in order."""

    version: int
    statements: tuple[str, ...]
    description: str = ""


@dataclass(frozen=True, slots=True)
class StepOutline:
    """What ordering and lineage need of a stored step (no payloads)."""

    run_id: str
    id: str
    parent_id: str | None
    index: int
    status: str
    started_ns: int
    ended_ns: int | None
    input_hash: str | None
    output_hash: str | None
    agent: str | None
    attributes: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RunQuery:
    """Filters for listing runs. Times are nanoseconds since the epoch."""

    workflow: str | None = None
    status: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    owner: str | None = None
    project: str | None = None  # None: every project
    limit: int = 100
    offset: int = 0


class StoreReader(Protocol):
    """The read side of a store: what reports, the REST API, the web UI and forensics use.

    A ``Store`` is one; so is ``flightlog.access.ProjectStore``, a store's read side seen from
    one project (every query scoped by construction).
    """

    @property
    def url(self) -> str:
        """The store's URL (also a key for caches of derived state)."""

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""

    @property
    def display_url(self) -> str:
        """The URL without secrets, for messages."""

    def list_runs(self, query: RunQuery | None = None) -> list[Run]:
        """Runs matching the filters, newest first."""

    def count_runs(self, query: RunQuery | None = None) -> int:
        """How many runs match the filters (ignores limit and offset)."""

    def get_run(self, run_id: str) -> Run | None:
        """The run with this id, or None."""

    def resolve_run_id(self, prefix: str, *, project: str | None = None) -> str:
        """The full id of the one run whose id starts with ``prefix`` (in ``project``, if
        given: runs of other projects neither match nor make a prefix ambiguous).

        Raises ``NotFoundError`` when none or more than one match.
        """

    def get_steps(self, run_id: str) -> list[Step]:
        """The run's steps in index order (steps of ingested runs without an agent show their
        nearest ancestor's, derived when read)."""

    def get_edges(self, run_id: str) -> list[Edge]:
        """The run's data and handoff edges (parent edges are derived from steps)."""

    def get_findings(self, run_id: str) -> list[Finding]:
        """The run's findings, oldest first."""

    def get_record(self, run_id: str) -> RunRecord:
        """The run with its steps, edges and findings. Raises ``NotFoundError``."""

    def get_payloads(self, hashes: Iterable[str]) -> dict[str, bytes]:
        """Canonical JSON bytes of the payloads with these hashes (missing ones are absent)."""

    def workflows(self, *, project: str | None = None) -> list[str]:
        """Every workflow name seen (in ``project``, if given)."""

    def dropped_records(self) -> int:
        """Total records all recorders reported dropping (0 when nothing was ever lost)."""

    def schema_version(self, component: str) -> int:
        """The highest applied migration version of a component (0 if none)."""

    def read(self) -> AbstractContextManager[Tx]:
        """A read-only snapshot."""


class Store(StoreReader, Protocol):
    """Durable storage of Flightlog records: the read side and everything that changes it."""

    @property
    def readonly(self) -> bool:
        """True when opened read-only: no migrations, no files, no writes."""

    @property
    def concurrent_writers(self) -> bool:
        """Whether write transactions of several processes or threads run at the same time
        (PostgreSQL) or one at a time (SQLite). With concurrent writers, read-before-write
        is safe only under ``Tx.lock`` or a unique key."""

    # -- writing -------------------------------------------------------------------------
    def write(
        self,
        batch: Batch,
        *,
        reorder: Iterable[str] = (),
        rederived: list[str] | None = None,
        lineage: Mapping[str, Collection[str]] | None = None,
    ) -> list[Conflict]:
        """Store a batch in one transaction; durable when this returns. Idempotent.

        Facts are append-only (``flightlog.store.facts``): a run or step that contradicts
        what is stored is not written; it is returned as a ``Conflict``, recorded as a
        finding and, with a ledger attached, as a ``fact.conflict`` entry. Write hooks
        receive what was applied: the runs and steps whose stored state changed, as stored,
        the edges this write inserted (one per key, as inserted: a key stored already is
        left as it is and not handed on), and the findings.

        ``reorder``: ingested runs (whose spans arrive in any order, possibly at several
        servers at once) whose derived state is recomputed in the same transaction, under
        each run's row lock, from every step stored: the step indices, from start times
        (not logged), and, for a run whose root span has ended, its outcome (status,
        failure point, reason, error; ``flightlog.status``), which replaces any outcome the
        batch sent for it and, when it changes, is written and logged as the run's record.
        Every writer of a run's steps takes that lock after writing them (a write of steps
        of a run not stored yet carries the run's record or a stand-in, as the server
        does), so whichever writer commits last derives from all of them.
        ``rederived``: when given, the ids of those runs whose outcome this write changed
        are appended to it.
        ``lineage``: for runs of ``reorder`` whose data edges and hand-offs the batch
        carries, inferred by the writer before the write (``flightlog.lineage``, as the
        server does), the ids of the steps they were inferred over. When, under the run's
        lock, other steps of the run are stored (another writer stored them after this one
        read the run), the batch's data edges of that run are replaced by those inferred
        over every stored step that touch the batch's steps, and its hand-offs by those
        linked over every stored step (``handoff_edges``), so the edges stored (and logged,
        once each) are what one writer receiving all the spans in commit order would
        store, whichever writer got which span.
        """

    def add_write_hook(self, hook: WriteHook) -> None:
        """Run ``hook(tx, batch)`` inside every ``write`` transaction, after the records."""

    def add_auditor(self, auditor: Callable[[Tx, str, dict[str, Any]], None]) -> None:
        """Attach ``auditor(tx, kind, data)``, called by ``audit``; the ledger attaches here."""

    def add_close_hook(self, hook: Callable[[], None]) -> None:
        """Run ``hook()`` when the store is closed, before its connections are released."""

    def audit(self, tx: Tx, kind: str, data: dict[str, Any]) -> None:
        """Append a record of ``kind`` (``incident.transition``, ``alert.sent``,
        ``attribution``, ...) to the audit ledger inside the caller's transaction ``tx``.
        A no-op when no ledger is attached."""

    def report_drops(self, recorder: str, service: str | None, dropped: int) -> None:
        """Record the running total of records a recorder process dropped under overload."""

    # -- reading what only writers need ----------------------------------------------------
    def step_outlines(self, run_ids: Iterable[str]) -> dict[str, list[StepOutline]]:
        """Per run, the outline of each stored step (runs without steps are absent)."""

    def existing_runs(self, run_ids: Iterable[str]) -> set[str]:
        """Which of ``run_ids`` are stored."""

    def ended_runs(
        self, *, since_ns: int = 0, limit: int = 1000, unmarked_in: tuple[str, str] | None = None
    ) -> list[str]:
        """Ids of the runs that ended (failed, degraded or succeeded; not counterfactual
        replays) at or after ``since_ns``, oldest end first: what run-end work polls.
        ``unmarked_in=(table, column)``: only runs whose id is not in that column of a
        capability's own table (the runs it has done), asked in the same query."""

    # -- capabilities' own tables ----------------------------------------------------------
    def migrate(self, component: str, migrations: Sequence[Migration]) -> None:
        """Apply the component's migrations that are not yet applied, in order."""

    def transaction(self) -> AbstractContextManager[Tx]:
        """A write transaction: committed (durably) on normal exit, rolled back on error."""

    def run_write(self, fn: Callable[[Tx], _T]) -> _T:
        """``fn(tx)`` in a write transaction, re-run from the start if the database aborts
        it as a deadlock or a serialization failure (maintenance: redaction, retention,
        ledger integration and checkpoints)."""

    def close(self) -> None:
        """Release connections. Idempotent."""


def chunked(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Split a sequence into slices of at most ``size`` (for bounded ``IN (...)`` lists)."""
    for i in range(0, len(items), size):
        yield items[i : i + size]
