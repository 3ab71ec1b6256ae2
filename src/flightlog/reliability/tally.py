"""Counting outcomes: per workflow and per UTC hour, what the reliability figures are made of.

A ``Bucket`` holds one workflow's counts for one hour of run start times: runs per status,
per step how many runs reached it and in how many it failed, the root causes of the failures
(from the attributions stored when runs ended), and costs. Buckets add up, so any window is
the sum of its hours; figures (rates, intervals, gaps) are computed from the sums
(``flightlog.reliability.figures``).

**What counts.** A run is *clean* when its status is ``succeeded``. ``failed`` and
``degraded`` runs (the run answered, but errors were swallowed on the way) are *not clean*:
both are failures in every rate, SLO and budget, and ``degraded`` is also counted on its
own. ``unknown`` runs (the outcome was never recorded) and ``running`` runs are left out of
every denominator; ``unknown`` is reported as a count.

A step *failed in a run* when the run is not clean and the step is the run's stored root
cause, its failure point (``Run.failed_step_id``), or a step that ended in error without a
child that ended in error (where an exception was raised, not every parent it passed
through). In a clean run every step it reached counts as a success: an error recovered by a
retry or a fallback did not stop the run from being right.

**Speed.** Counting reads every step of every run in the window. Hours that are over (ended
more than ``SEAL_AFTER_NS`` ago, no run still running) are kept in the ``reliability``
component's table by ``refresh`` (``flightlog watch`` calls it) together with
a fingerprint of their runs (count per status, sum of end times, attributions stored); a
reader uses a kept hour only when the fingerprint still matches and counts every other hour
from the records, so the figures are always those of the records. Reading never writes.

**Why its SQL reads the core tables itself.** Counting is one aggregate pass per range of
hours over runs and steps *joined with the attributions the forensics component stores*;
as store functions (``flightlog.store.core``) it would teach the store another component's
table. It only reads; the core tables are written by the store alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flightlog import _json
from flightlog.store.base import Migration

if TYPE_CHECKING:
    from flightlog.store.base import Store, StoreReader

HOUR_NS = 3_600_000_000_000
DAY_NS = 24 * HOUR_NS
SEAL_AFTER_NS = 10 * 60 * 1_000_000_000  # an hour is kept once it ended this long ago
NOT_CLEAN = ("failed", "degraded")
COUNTED = ("succeeded", "failed", "degraded")
# Replayed runs (``flightlog replay``) are left out of every count.

MIGRATIONS = (
    Migration(
        1,
        (
            """CREATE TABLE reliability_buckets (
                workflow TEXT NOT NULL,
                hour BIGINT NOT NULL,
                fingerprint TEXT NOT NULL,
                data TEXT NOT NULL,
                computed_ns BIGINT NOT NULL,
                PRIMARY KEY (workflow, hour)
            )""",
        ),
        "reliability counts per workflow and hour, for hours that are over",
    ),
    Migration(
        2,
        ("CREATE INDEX reliability_runs ON runs (workflow, started_ns, status, ended_ns, source)",),
        "a covering index for counting runs per workflow, hour and status",
    ),
)


@dataclass
class Bucket:
    """One workflow's counts over some span of run start times (an hour, or a sum of them)."""

    statuses: dict[str, int] = field(default_factory=dict)
    # step name -> [runs that reached it, runs in which it failed, cost in all runs,
    #               cost in runs that were not clean, lowest index it had in a run]
    steps: dict[str, list[float]] = field(default_factory=dict)
    # (root-cause step, agent, owner) -> [failed runs, their total cost]; step None = the
    # failure has no stored attribution
    roots: dict[tuple[str | None, str | None, str | None], list[float]] = field(
        default_factory=dict
    )
    # root-cause step name -> its kind (``tool`` steps are owned by ``tool =`` rules too)
    root_kinds: dict[str, str] = field(default_factory=dict)
    cost_total: float = 0.0
    cost_not_clean: float = 0.0

    def add(self, other: Bucket) -> None:
        for k, v in other.statuses.items():
            self.statuses[k] = self.statuses.get(k, 0) + v
        for name, vals in other.steps.items():
            mine = self.steps.setdefault(name, [0, 0, 0.0, 0.0, vals[4]])
            for i in range(4):
                mine[i] += vals[i]
            mine[4] = min(mine[4], vals[4])
        for key, vals in other.roots.items():
            mine = self.roots.setdefault(key, [0, 0.0])
            mine[0] += vals[0]
            mine[1] += vals[1]
        self.root_kinds.update(other.root_kinds)
        self.cost_total += other.cost_total
        self.cost_not_clean += other.cost_not_clean

    @property
    def clean(self) -> int:
        return self.statuses.get("succeeded", 0)

    @property
    def trials(self) -> int:
        return sum(self.statuses.get(s, 0) for s in COUNTED)

    def to_dict(self) -> dict[str, Any]:
        return {
            "statuses": self.statuses,
            "steps": self.steps,
            "roots": [[*k, *v] for k, v in self.roots.items()],
            "root_kinds": self.root_kinds,
            "cost_total": self.cost_total,
            "cost_not_clean": self.cost_not_clean,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Bucket:
        return cls(
            statuses={str(k): int(v) for k, v in data.get("statuses", {}).items()},
            steps={str(k): list(v) for k, v in data.get("steps", {}).items()},
            roots={(r[0], r[1], r[2]): [r[3], r[4]] for r in data.get("roots", [])},
            root_kinds={str(k): str(v) for k, v in data.get("root_kinds", {}).items()},
            cost_total=float(data.get("cost_total", 0.0)),
            cost_not_clean=float(data.get("cost_not_clean", 0.0)),
        )


Key = tuple[str, int]  # (workflow, hour number since the epoch)


def _has_table(tx: Any, dialect: str, name: str) -> bool:
    if dialect == "postgresql":
        row = tx.fetchone("SELECT to_regclass(?) IS NOT NULL", (name,))
        return bool(row and row[0])
    row = tx.fetchone("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    return row is not None


def _hours(lo: int, hi: int) -> Iterator[tuple[int, int, int]]:
    """(hour number, start, end) of each hour that [lo, hi) touches, clipped to it."""
    for h in range(lo // HOUR_NS, -(-hi // HOUR_NS)):
        yield h, max(lo, h * HOUR_NS), min(hi, (h + 1) * HOUR_NS)


def _where(workflow: str | None) -> tuple[str, list[Any]]:
    # Counterfactual replays (source "replay") re-execute recorded runs: never counted.
    if workflow is None:
        return "r.started_ns >= ? AND r.started_ns < ? AND r.source <> 'replay'", []
    return (
        "r.workflow = ? AND r.started_ns >= ? AND r.started_ns < ? AND r.source <> 'replay'",
        [workflow],
    )


_NC = "('failed', 'degraded')"

# One query per hour: each groups a few rows, where one query over the window would sort
# every run of it in a temporary B-tree (several times slower on SQLite).


def _span(tx: Any, workflow: str | None, lo: int, hi: int) -> tuple[int, int]:
    """[lo, hi) narrowed to the start times of the runs that exist (empty: lo >= hi)."""
    if workflow is None:
        row = tx.fetchone(
            "SELECT min(started_ns), max(started_ns) FROM runs WHERE started_ns >= ? "
            "AND started_ns < ?",
            (lo, hi),
        )
    else:
        row = tx.fetchone(
            "SELECT min(started_ns), max(started_ns) FROM runs WHERE workflow = ? "
            "AND started_ns >= ? AND started_ns < ?",
            (workflow, lo, hi),
        )
    if not row or row[0] is None:
        return lo, lo
    return int(row[0]), int(row[1]) + 1


# Part of every hour's fingerprint: hours kept in an older format are counted again.
BUCKET_FORMAT = 2  # 2: root_kinds


def _fingerprints(
    tx: Any, has_att: bool, workflow: str | None, lo: int, hi: int
) -> tuple[dict[Key, dict[str, int]], dict[Key, str]]:
    """Runs per status for each (workflow, hour), and each hour's fingerprint."""
    where, head = _where(workflow)
    lo, hi = _span(tx, workflow, lo, hi)
    statuses: dict[Key, dict[str, int]] = {}
    ends: dict[Key, int] = {}
    atts: dict[Key, int] = {}
    run_sql = (
        "SELECT r.workflow, r.status, count(*), sum(coalesce(r.ended_ns, 0) % 1000000007) "
        f"FROM runs r WHERE {where} GROUP BY r.workflow, r.status"
    )
    for hour, h_lo, h_hi in _hours(lo, hi):
        for wf, status, n, end_sum in tx.fetchall(run_sql, [*head, h_lo, h_hi]):
            key = (str(wf), hour)
            statuses.setdefault(key, {})[str(status)] = int(n)
            ends[key] = ends.get(key, 0) + int(end_sum or 0)
    if has_att and statuses:
        # One pass over the attributions (far fewer than runs): on SQLite, CROSS JOIN keeps
        # them the outer loop instead of probing the attributions for every run.
        for wf, started in tx.fetchall(
            "SELECT r.workflow, r.started_ns FROM forensics_attributions a CROSS JOIN runs r "
            f"WHERE r.id = a.run_id AND {where}",
            [*head, lo, hi],
        ):
            key = (str(wf), int(started) // HOUR_NS)
            atts[key] = atts.get(key, 0) + 1
    prints = {
        key: _json.dumps([BUCKET_FORMAT, sorted(st.items()), ends.get(key, 0), atts.get(key, 0)])
        for key, st in statuses.items()
    }
    return statuses, prints


def _details(
    tx: Any, has_att: bool, workflow: str | None, lo: int, hi: int, into: dict[Key, Bucket]
) -> None:
    """Count steps, root causes and costs of runs started in [lo, hi) into ``into``."""
    where, head = _where(workflow)
    att_join = (
        "LEFT JOIN forensics_attributions a ON a.run_id = r.id"
        if has_att
        else "LEFT JOIN (SELECT CAST(NULL AS TEXT) AS run_id, CAST(NULL AS TEXT) AS root_step_id)"
        " a ON a.run_id = r.id"
    )
    failed_here = (
        f"r.status IN {_NC} AND (s.id = a.root_step_id OR s.id = r.failed_step_id OR "
        "(s.status = 'error' AND NOT EXISTS (SELECT 1 FROM steps c WHERE c.run_id = s.run_id "
        "AND c.parent_id = s.id AND c.status = 'error')))"
    )
    step_sql = (
        "SELECT r.workflow, s.name, count(DISTINCT s.run_id), "
        f"count(DISTINCT CASE WHEN {failed_here} THEN s.run_id END), "
        f"sum(coalesce(s.cost, 0)), sum(CASE WHEN r.status IN {_NC} THEN coalesce(s.cost, 0) "
        f"ELSE 0 END), min(s.idx) FROM runs r JOIN steps s ON s.run_id = r.id {att_join} "
        f"WHERE r.status IN ('succeeded', 'failed', 'degraded') AND {where} "
        "GROUP BY r.workflow, s.name"
    )
    root_sql = (
        "SELECT r.workflow, rs.name, rs.agent, rs.owner, rs.kind, count(*), "
        "sum((SELECT sum(coalesce(c.cost, 0)) FROM steps c WHERE c.run_id = r.id)) "
        f"FROM runs r {att_join} "
        "LEFT JOIN steps rs ON rs.run_id = r.id AND rs.id = a.root_step_id "
        f"WHERE r.status IN {_NC} AND {where} "
        "GROUP BY r.workflow, rs.name, rs.agent, rs.owner, rs.kind"
    )
    for hour, h_lo, h_hi in _hours(lo, hi):
        params = [*head, h_lo, h_hi]
        for wf, name, reached, failed, cost, cost_nc, idx in tx.fetchall(step_sql, params):
            b = into.setdefault((str(wf), hour), Bucket())
            b.steps[str(name)] = [
                int(reached),
                int(failed),
                float(cost or 0),
                float(cost_nc or 0),
                int(idx or 0),
            ]
            b.cost_total += float(cost or 0)
            b.cost_not_clean += float(cost_nc or 0)
        for wf, step, agent, owner, kind, n, cost in tx.fetchall(root_sql, params):
            b = into.setdefault((str(wf), hour), Bucket())
            mine = b.roots.setdefault((step, agent, owner), [0, 0.0])
            mine[0] += int(n)
            mine[1] += float(cost or 0)
            if step is not None and kind:
                b.root_kinds[str(step)] = str(kind)


def _ranges(hours: Iterable[int]) -> Iterator[tuple[int, int]]:
    """Contiguous runs of hour numbers as (first, last + 1)."""
    ordered = sorted(set(hours))
    if not ordered:
        return
    start = prev = ordered[0]
    for h in ordered[1:]:
        if h != prev + 1:
            yield start, prev + 1
            start = h
        prev = h
    yield start, prev + 1


def _kept(tx: Any, dialect: str, workflow: str | None, h_lo: int, h_hi: int) -> dict[Key, Any]:
    if not _has_table(tx, dialect, "reliability_buckets"):
        return {}
    sql = (
        "SELECT workflow, hour, fingerprint, data FROM reliability_buckets "
        "WHERE hour >= ? AND hour < ?"
    )
    params: list[Any] = [h_lo, h_hi]
    if workflow is not None:
        sql += " AND workflow = ?"
        params.append(workflow)
    return {(str(w), int(h)): (str(fp), str(d)) for w, h, fp, d in tx.fetchall(sql, params)}


@dataclass
class Tally:
    """Buckets of a window, per (workflow, hour); ``from_cache`` counts the kept hours used."""

    buckets: dict[Key, Bucket]
    since_ns: int
    until_ns: int
    from_cache: int = 0
    counted: int = 0

    def workflows(self) -> list[str]:
        return sorted({w for w, _ in self.buckets})

    def total(self, workflow: str) -> Bucket:
        out = Bucket()
        for (w, _), b in self.buckets.items():
            if w == workflow:
                out.add(b)
        return out

    def by_day(self, workflow: str) -> dict[int, Bucket]:
        """UTC day number -> that day's counts (days with no runs are absent)."""
        out: dict[int, Bucket] = {}
        for (w, h), b in self.buckets.items():
            if w == workflow:
                out.setdefault(h * HOUR_NS // DAY_NS, Bucket()).add(b)
        return out


def count(
    store: StoreReader,
    *,
    since_ns: int,
    until_ns: int,
    workflow: str | None = None,
    use_kept: bool = True,
) -> Tally:
    """Count outcomes of runs started in [since_ns, until_ns) (see the module docstring).

    Reads only; hours kept by ``refresh`` are used where their fingerprint still matches.
    """
    if until_ns <= since_ns:
        return Tally({}, since_ns, until_ns)
    dialect = store.dialect
    with store.read() as tx:
        has_att = _has_table(tx, dialect, "forensics_attributions")
        statuses, prints = _fingerprints(tx, has_att, workflow, since_ns, until_ns)
        first_full = -(-since_ns // HOUR_NS)
        last_full = until_ns // HOUR_NS  # exclusive
        kept = _kept(tx, dialect, workflow, first_full, last_full) if use_kept else {}
        buckets: dict[Key, Bucket] = {}
        need: dict[str | None, set[int]] = {}
        from_cache = 0
        for key, st in statuses.items():
            got = kept.get(key)
            if got is not None and got[0] == prints[key]:
                b = Bucket.from_dict(_json.loads(got[1]))
                b.statuses = dict(st)
                buckets[key] = b
                from_cache += 1
            else:
                buckets[key] = Bucket(statuses=dict(st))
                need.setdefault(key[0] if workflow is None else workflow, set()).add(key[1])
        scratch: dict[Key, Bucket] = {}
        hours = {h for hs in need.values() for h in hs}
        wf_filter = (
            workflow if workflow is not None else (next(iter(need)) if len(need) == 1 else None)
        )
        for h_lo, h_hi in _ranges(hours):
            lo, hi = max(since_ns, h_lo * HOUR_NS), min(until_ns, h_hi * HOUR_NS)
            _details(tx, has_att, wf_filter, lo, hi, scratch)
        counted = 0
        for key, detail in scratch.items():
            if key in buckets and key[1] in need.get(key[0], ()):
                st = buckets[key].statuses
                detail.statuses = st
                buckets[key] = detail
                counted += 1
    return Tally(buckets, since_ns, until_ns, from_cache, counted)


def refresh(store: Store, *, now_ns: int | None = None, lookback_ns: int = 90 * DAY_NS) -> int:
    """Keep the counts of every hour that is over (see the module docstring); returns how
    many hours were (re)counted. Writes; called by ``flightlog watch``."""
    now = time.time_ns() if now_ns is None else now_ns
    store.migrate("reliability", MIGRATIONS)
    until = ((now - SEAL_AFTER_NS) // HOUR_NS) * HOUR_NS
    since = ((now - lookback_ns) // HOUR_NS) * HOUR_NS
    if until <= since:
        return 0
    dialect = store.dialect
    with store.read() as tx:
        has_att = _has_table(tx, dialect, "forensics_attributions")
        statuses, prints = _fingerprints(tx, has_att, None, since, until)
        kept = _kept(tx, dialect, None, since // HOUR_NS, until // HOUR_NS)
        stale = {
            key
            for key, st in statuses.items()
            if "running" not in st and (kept.get(key) or ("", ""))[0] != prints[key]
        }
        scratch: dict[Key, Bucket] = {}
        for h_lo, h_hi in _ranges(h for _, h in stale):
            _details(tx, has_att, None, h_lo * HOUR_NS, h_hi * HOUR_NS, scratch)
    if not stale:
        return 0
    rows = []
    for key in sorted(stale):
        b = scratch.get(key, Bucket())
        b.statuses = statuses[key]
        rows.append((key[0], key[1], prints[key], _json.dumps(b.to_dict()), now))
    with store.transaction() as tx:
        tx.executemany(
            "INSERT INTO reliability_buckets (workflow, hour, fingerprint, data, computed_ns) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (workflow, hour) DO UPDATE SET "
            "fingerprint = excluded.fingerprint, data = excluded.data, "
            "computed_ns = excluded.computed_ns",
            rows,
        )
    return len(rows)
