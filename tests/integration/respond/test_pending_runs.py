"""Which ended runs the engine has still to process (``flightlog watch``): asked of the store
(``Store.ended_runs``), which leaves out those marked in the engine's own table."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flightlog.model import Batch, Run
from flightlog.respond.clock import ManualClock
from flightlog.respond.config import RespondConfig
from flightlog.respond.engine import Engine
from flightlog.store import open_store
from flightlog.store.base import Store

T0 = 1_700_000_000 * 10**9


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/pending.db"
    else:
        url = request.getfixturevalue("pg_url")
    s = open_store(url)
    yield s
    s.close()


def _run(i: int, status: str, ended: int | None, source: str = "sdk") -> Run:
    return Run(f"{i:032x}", "wf", T0, status, ended, source=source)


def test_pending_runs_are_the_stores_ended_runs_the_engine_has_not_marked(store: Store) -> None:
    runs = [
        _run(1, "failed", T0 + 50),
        _run(2, "succeeded", T0 + 10),
        _run(3, "degraded", T0 + 30),
        _run(4, "running", None),  # not ended
        _run(5, "failed", T0 + 30),  # same end as 3: by id
        _run(6, "failed", T0 + 20, source="replay"),  # an experiment
        _run(7, "succeeded", T0 + 5),  # before --since
        _run(8, "succeeded", T0 + 40),
        _run(9, "failed", T0 + 60),
    ]
    store.write(Batch(runs=runs))
    assert store.ended_runs(since_ns=T0 + 10, limit=3) == [runs[1].id, runs[2].id, runs[4].id]
    with pytest.raises(ValueError, match="not a table or column name"):
        store.ended_runs(unmarked_in=("respond_processed; DROP TABLE runs", "run_id"))

    engine = Engine(store, RespondConfig(), clock=ManualClock(T0))
    with store.transaction() as tx:  # 2 and 8 were processed before
        for run in (runs[1], runs[7]):
            tx.execute(
                "INSERT INTO respond_processed (run_id, status, incident_id, processed_ns) "
                "VALUES (?, ?, ?, ?)",
                (run.id, run.status, None, T0),
            )
    want = [runs[2].id, runs[4].id, runs[0].id, runs[8].id]
    assert engine.pending_runs(since_ns=T0 + 10) == want
    assert engine.pending_runs(since_ns=T0 + 10, limit=3) == want[:3]
    assert engine.pending_runs(since_ns=T0 + 55) == [runs[8].id]
    assert engine.pending_runs() == [runs[6].id, *want]
