"""Property: for any store, the reliability counts equal a plain recount of the records, with
or without kept hours, for any window."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flightlog.app import open_store
from flightlog.forensics.attribution import Attribution
from flightlog.forensics.ledger import record_attribution
from flightlog.model import Batch, ErrorInfo, Run, Step
from flightlog.reliability import refresh, reliability

H = 3_600 * 10**9
T0 = 1_767_225_600 * 10**9
STATUSES = ("succeeded", "failed", "degraded", "unknown", "running")
NAMES = ("a", "b", "c")

run_st = st.tuples(
    st.integers(0, 5 * H),  # start offset
    st.sampled_from(STATUSES),
    st.lists(st.tuples(st.sampled_from(NAMES), st.booleans()), min_size=0, max_size=4),
    st.one_of(st.none(), st.integers(0, 3)),  # index of the attributed root step
    st.sampled_from(("sdk", "sdk", "replay")),
)
_ids = itertools.count(1)


def _expected(runs: list[Any], since: int, until: int) -> dict[str, Any]:
    statuses: dict[str, int] = {}
    steps: dict[str, list[int]] = {}
    roots: dict[Any, int] = {}
    for start, status, plan, root, source in runs:
        if not since <= start < until or source == "replay":
            continue
        statuses[status] = statuses.get(status, 0) + 1
        if status not in ("succeeded", "failed", "degraded"):
            continue
        bad = status != "succeeded"
        root_name = plan[root][0] if (bad and root is not None and root < len(plan)) else None
        failed_names = {n for n, err in plan if err} | ({root_name} if root_name else set())
        for name in {n for n, _ in plan}:
            cell = steps.setdefault(name, [0, 0])
            cell[0] += 1
            cell[1] += 1 if bad and name in failed_names else 0
        if bad:
            roots[root_name] = roots.get(root_name, 0) + 1
    return {"statuses": statuses, "steps": steps, "roots": roots}


def _write(store: Any, runs: list[Any]) -> None:
    for start, status, plan, root, source in runs:
        n = next(_ids)
        rid = f"{n:032x}"
        steps = [
            Step(
                rid,
                f"{n:08x}{i:08x}",
                name,
                "tool",
                i + 1,
                T0 + start + i,
                ended_ns=T0 + start + i + 1,
                status="error" if err else "ok",
                error=ErrorInfo("E", "x") if err else None,
            )
            for i, (name, err) in enumerate(plan)
        ]
        ended = None if status == "running" else T0 + start + 10
        store.write(
            Batch(runs=[Run(rid, "w", T0 + start, status, ended, source=source)], steps=steps)
        )
        if status in ("failed", "degraded") and root is not None and root < len(plan):
            s = steps[root]
            record_attribution(
                store,
                Attribution.from_dict(
                    {
                        "run_id": rid,
                        "failed": True,
                        "confidence": 0.9,
                        "root_cause": {"id": s.id, "index": s.index, "name": s.name},
                    }
                ),
            )


def _got(rep: Any) -> dict[str, Any]:
    if not rep.workflows:
        return {"statuses": {}, "steps": {}, "roots": {}}
    (wf,) = rep.workflows
    return {
        "statuses": wf.statuses,
        "steps": {s.name: [s.reached, s.failed] for s in wf.steps},
        "roots": {s.name: s.failures for s in wf.by_step},
    }


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(runs=st.lists(run_st, max_size=12), a=st.integers(0, 6 * H), b=st.integers(0, 6 * H))
def test_counts_equal_a_recount(tmp_path: Path, runs: list[Any], a: int, b: int) -> None:
    path = tmp_path / f"p{next(_ids)}.db"
    store = open_store(f"sqlite:///{path}")
    try:
        _write(store, runs)
        since, until = T0 + min(a, b), T0 + max(a, b) + 1
        want = _expected([(s, *rest) for s, *rest in runs], min(a, b), max(a, b) + 1)
        assert _got(reliability(store, since_ns=since, until_ns=until)) == want
        refresh(store, now_ns=T0 + 30 * H, lookback_ns=40 * H)
        assert _got(reliability(store, since_ns=since, until_ns=until)) == want
    finally:
        store.close()
