"""Reliability figures against values computed by hand (see ``known.py`` for the store)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flightlog.app import open_store
from flightlog.model import Batch, Run
from flightlog.reliability import refresh, reliability
from flightlog.reliability.stats import Rate, pass_k, per_thousand, wilson

from . import known


@pytest.fixture
def kstore(tmp_path: Path) -> Iterator[Any]:
    s = open_store(f"sqlite:///{tmp_path / 'k.db'}")
    known.build(s)
    yield s
    s.close()


WINDOW = {"since_ns": known.DAY1, "until_ns": known.DAY1 + 3 * 86_400 * 10**9}


def test_wilson_textbook_values() -> None:
    # 0 of 10: upper bound z²/(n+z²) = 3.8415/13.8415
    assert wilson(0, 10) == (0.0, pytest.approx(0.27753, abs=1e-5))
    assert wilson(10, 10) == (pytest.approx(0.72247, abs=1e-5), 1.0)
    # 6 of 11: centre (p + z²/2n)/(1 + z²/n), half-width z/(1+z²/n)·sqrt(p(1-p)/n + z²/4n²)
    lo, hi = wilson(6, 11)
    assert lo == pytest.approx(0.28009, abs=1e-5) and hi == pytest.approx(0.78729, abs=1e-5)
    assert wilson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson(3, 2)


def test_pass_k_and_per_thousand() -> None:
    r = Rate(9, 10)
    assert pass_k(r, 3)["value"] == pytest.approx(0.729)
    lo, hi = r.interval
    assert pass_k(r, 3)["low"] == pytest.approx(lo**3)
    f = per_thousand(r)
    assert f["expected"] == pytest.approx(100.0)
    assert f["upper_bound"] == pytest.approx(1000 * (1 - lo))
    assert per_thousand(Rate(0, 0))["expected"] is None


def test_figures_match_hand_computed(kstore: Any) -> None:
    rep = reliability(kstore, **WINDOW)
    (wf,) = rep.workflows
    assert wf.workflow == "w"
    assert wf.statuses == {"succeeded": 6, "failed": 4, "degraded": 1, "unknown": 1, "running": 1}
    # 11 counted runs (unknown and running left out), 6 clean; degraded is a failure
    assert (wf.end_to_end.successes, wf.end_to_end.trials) == (6, 11)
    steps = {s.name: (s.reached - s.failed, s.reached) for s in wf.steps}
    # a: reached by all 11, failed as root cause in 2; b: failed in 2 (raised) + 1
    # (degraded); c: never reached by the 2 runs that stopped at b, failed in 2
    assert steps == {"a": (9, 11), "b": (8, 11), "c": (7, 9)}
    assert wf.product == pytest.approx((9 / 11) * (8 / 11) * (7 / 9))  # 56/121
    assert wf.gap == pytest.approx(6 / 11 - 56 / 121)  # +10/121: correlated failures
    assert wf.gap > 0
    by_step = {s.name: (s.failures, s.owner) for s in wf.by_step}
    assert by_step == {"a": (2, "team-a"), "b": (2, "team-b"), None: (1, None)}
    assert {s.name: s.failures for s in wf.by_owner} == {"team-a": 2, "team-b": 2, None: 1}
    assert {s.name: s.failures for s in wf.by_agent} == {"agent-a": 2, "agent-b": 2, None: 1}
    assert wf.by_step[0].share == pytest.approx(2 / 5)
    assert wf.unattributed == 1
    # costs: failed at b 2×(a,b), correlated 2×3 steps, degraded 1×3 -> 13 steps of 0.01
    assert wf.cost_of_failures == pytest.approx(0.13)
    assert wf.cost_total == pytest.approx(0.31)  # + 6 clean runs × 3 steps
    by_step_cost = {s.name: s.cost for s in wf.by_step}
    assert by_step_cost["b"] == pytest.approx(0.04) and by_step_cost["a"] == pytest.approx(0.06)
    # trend per day: day 1 4/4, day 2 2/7
    assert [(d.day_ns, d.rate.successes, d.rate.trials) for d in wf.days] == [
        (known.DAY1, 4, 4),
        (known.DAY2, 2, 7),
    ]
    d = wf.to_dict()
    assert d["failures_per_1000"]["expected"] == pytest.approx(1000 * 5 / 11)
    assert d["pass_k"][0]["value"] == pytest.approx((6 / 11) ** 3)
    assert any("degraded" in n for n in wf.notes)


def test_cost_per_failure_configured(kstore: Any) -> None:
    (wf,) = reliability(kstore, cost_per_failure={"w": 25.0}, **WINDOW).workflows
    assert wf.business_cost == pytest.approx(5 * 25.0)


def test_zero_volume_windows(kstore: Any) -> None:
    empty = reliability(kstore, since_ns=0, until_ns=known.DAY1)
    assert empty.workflows == []
    (wf,) = reliability(kstore, since_ns=0, until_ns=known.DAY1, workflow="w").workflows
    assert wf.end_to_end.trials == 0 and wf.end_to_end.value is None
    assert wf.end_to_end.interval == (0.0, 1.0)
    assert wf.product is None and wf.gap is None and wf.days == []
    assert wf.to_dict()["failures_per_1000"]["expected"] is None


def test_partial_window_counts_exact_run_times(kstore: Any) -> None:
    # from the middle of day 2's third hour: the 2 runs that failed at b started at +2h
    since = known.DAY2 + 2 * known.H + 1
    (wf,) = reliability(kstore, since_ns=since, until_ns=known.DAY2 + 86_400 * 10**9).workflows
    assert (wf.end_to_end.successes, wf.end_to_end.trials) == (0, 4)


def test_kept_hours_give_the_same_figures_and_notice_changes(kstore: Any) -> None:
    before = reliability(kstore, **WINDOW).to_dict()
    now = known.DAY2 + 10 * 86_400 * 10**9
    assert refresh(kstore, now_ns=now, lookback_ns=30 * 86_400 * 10**9) > 0
    # the hour with the running run is not kept
    rep = reliability(kstore, **WINDOW)
    assert rep.kept_hours > 0
    assert rep.to_dict() == before
    assert refresh(kstore, now_ns=now, lookback_ns=30 * 86_400 * 10**9) == 0
    # a new failed run lands in a kept hour: the fingerprint no longer matches
    kstore.write(Batch(runs=[Run("f" * 32, "w", known.DAY1 + 30, "failed", known.DAY1 + 40)]))
    (wf,) = reliability(kstore, **WINDOW).workflows
    assert (wf.end_to_end.successes, wf.end_to_end.trials) == (6, 12)
    assert {s.name: s.failures for s in wf.by_step}[None] == 2
    assert not math.isnan(wf.gap or 0.0)


def test_same_figures_on_postgresql(kstore: Any, pg_url: str) -> None:
    pg = open_store(pg_url)
    try:
        known.build(pg)
        want = reliability(kstore, **WINDOW).to_dict()
        assert reliability(pg, **WINDOW).to_dict() == want
        now = known.DAY2 + 10 * 86_400 * 10**9
        assert refresh(pg, now_ns=now, lookback_ns=30 * 86_400 * 10**9) > 0
        rep = reliability(pg, **WINDOW)
        assert rep.kept_hours > 0 and rep.to_dict() == want
        # SLOs and the board report read the same way on PostgreSQL
        from flightlog.reliability.board import board_report
        from flightlog.reliability.settings import SLO
        from flightlog.reliability.slo import evaluate

        end = WINDOW["until_ns"]
        for slo in (
            SLO("w", "w", 0.9, 3 * 86_400 * 10**9),
            SLO("w/b", "w", 0.9, 3 * 86_400 * 10**9, step="b"),
        ):
            assert evaluate(pg, slo, end).to_dict() == evaluate(kstore, slo, end).to_dict()
        b_pg = board_report(pg, period_ns=3 * 86_400 * 10**9, now_ns=end)
        b_sq = board_report(kstore, period_ns=3 * 86_400 * 10**9, now_ns=end)
        assert b_pg["workflows"] == b_sq["workflows"]
        assert b_pg["root_causes_by_owner"] == b_sq["root_causes_by_owner"]
    finally:
        pg.close()
