"""SLOs and burn-rate alerts, driven by a manual clock through the real routing, grouping
and outbox to a webhook receiver on loopback. Burn rates are checked by hand."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flightlog.app import open_store
from flightlog.model import Batch, Run, Step
from flightlog.reliability.burn_alerts import periodic, sync
from flightlog.reliability.settings import load_reliability_settings
from flightlog.reliability.slo import evaluate, evaluate_all
from flightlog.respond.clock import ManualClock
from flightlog.respond.config import load_respond_config
from flightlog.respond.engine import Engine
from tests.integration.respond.conftest import Receiver

T0 = 1_790_000_000 * 10**9
MIN = 60 * 10**9
_ids = itertools.count(1)


def runs(
    store: Any, workflow: str, status: str, n: int, at_ns: int, step_status: str = "ok"
) -> None:
    batch = Batch()
    for _ in range(n):
        i = next(_ids)
        rid = f"{i:032x}"
        batch.runs.append(Run(rid, workflow, at_ns, status, at_ns + 1))
        batch.steps.append(
            Step(
                rid,
                f"{i:016x}",
                "search_policy",
                "tool",
                1,
                at_ns,
                ended_ns=at_ns + 1,
                status=step_status if status != "succeeded" else "ok",
            )
        )
    store.write(batch)


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def setup(tmp_path: Path, hooks: Receiver) -> Iterator[tuple[Any, Engine, ManualClock, Path]]:
    cfg = tmp_path / "flightlog.toml"
    cfg.write_text(
        f"""
[teams.platform]
channels = ["ops-tickets"]
pager = ["ops-pager"]

[teams.search-team]
channels = ["search-tickets"]
pager = ["search-pager"]

[[owners]]
team = "platform"

[[owners]]
step = "search_*"
team = "search-team"

[channels.ops-pager]
type = "webhook"
url = "{hooks.url("/ops-pager")}"

[channels.ops-tickets]
type = "webhook"
url = "{hooks.url("/ops-tickets")}"

[channels.search-pager]
type = "webhook"
url = "{hooks.url("/search-pager")}"

[channels.search-tickets]
type = "webhook"
url = "{hooks.url("/search-tickets")}"

[route]
group_wait = "0s"
group_interval = "1m"

[[slo]]
workflow = "claims"
target = 0.99
window = "28d"
min_runs = 20

[[slo]]
workflow = "claims"
step = "search_policy"
target = 0.995
name = "claims-search"

[[slo]]
workflow = "tiny"
target = 0.99
"""
    )
    store = open_store(f"sqlite:///{tmp_path / 'slo.db'}")
    clock = ManualClock(T0)
    engine = Engine(store, load_respond_config(cfg), clock=clock)
    yield store, engine, clock, cfg
    store.close()


def test_burn_rates_by_hand_and_volume_guard(setup: Any) -> None:
    store, engine, clock, cfg = setup
    (wf, step, tiny) = load_reliability_settings(cfg).slos
    runs(store, "claims", "succeeded", 100, T0 - 50 * MIN)
    runs(store, "claims", "failed", 20, T0 - 2 * MIN, step_status="error")
    runs(store, "tiny", "failed", 5, T0 - 2 * MIN)
    st = evaluate(store, wf, T0)
    # 1h: 20 bad of 120 -> (20/120)/0.01 = 16.67; 5m: 20 of 20 -> 100
    assert st.windows[60 * MIN].burn == pytest.approx(16.666, rel=1e-3)
    assert st.windows[5 * MIN].burn == pytest.approx(100.0)
    assert st.sli == pytest.approx(100 / 120)
    assert st.budget_remaining == pytest.approx(1 - 16.666, rel=1e-3)
    assert {f.rule.label for f in st.firing} == {
        "14.4x over 1h/5m",
        "6x over 6h/30m",
        "1x over 3d/6h",
    }
    # the step SLO: search_policy failed in 20 of the 120 runs that reached it
    ss = evaluate(store, step, T0)
    assert (ss.period.bad, ss.period.valid) == (20, 120)
    assert ss.windows[60 * MIN].burn == pytest.approx((20 / 120) / 0.005)
    # 5 runs, all failed: far over every rate, held back by min_runs = 20
    ts = evaluate(store, tiny, T0)
    assert ts.firing == [] and len(ts.guarded) == 3
    # 30 minutes earlier nothing had happened yet
    assert evaluate(store, wf, T0 - 30 * MIN).firing == []


def test_page_then_ticket_then_resolve_through_routing(setup: Any, hooks: Receiver) -> None:
    store, engine, clock, cfg = setup
    slos = load_reliability_settings(cfg).slos
    runs(store, "claims", "succeeded", 100, T0 - 50 * MIN)
    runs(store, "claims", "failed", 20, T0 - 2 * MIN, step_status="error")

    assert sync(engine, evaluate_all(store, slos, clock.now_ns())) == {"opened": 4, "resolved": 0}
    engine.tick()
    page = hooks.delivered("/ops-pager")
    assert len(page) == 1
    alert = page[0].body["alerts"][0]
    assert alert["labels"]["severity"] == "critical" and alert["labels"]["slo"] == "claims"
    assert "burning its error budget" in alert["annotations"]["summary"]
    assert hooks.delivered("/search-pager")[0].body["alerts"][0]["labels"]["slo"] == (
        "claims-search"
    )
    tickets = [r.body["alerts"][0]["labels"]["severity"] for r in hooks.delivered("/ops-tickets")]
    assert tickets == ["warning"]
    # evaluating again changes nothing: one incident per SLO and severity
    assert sync(engine, evaluate_all(store, slos, clock.now_ns())) == {"opened": 0, "resolved": 0}

    # two hours on, the failures have left the 1h/5m and 6h/30m windows' short halves:
    # pages resolve, the tickets (3d/6h) keep firing
    clock.advance(2 * 3600)
    assert sync(engine, evaluate_all(store, slos, clock.now_ns())) == {"opened": 0, "resolved": 2}
    clock.advance(120)
    engine.tick()
    statuses = [r.body["status"] for r in hooks.delivered("/ops-pager")]
    assert statuses == ["firing", "resolved"]

    # successful runs never auto-resolve an SLO incident
    runs(store, "claims", "succeeded", 10, clock.now_ns() - MIN)
    engine.process_runs(engine.pending_runs())
    with store.read() as tx:
        open_slo = tx.fetchall(
            "SELECT fingerprint FROM respond_incidents WHERE status <> 'resolved' "
            "AND fingerprint LIKE 'slo/%' ORDER BY fingerprint"
        )
    assert [r[0] for r in open_slo] == ["slo/claims-search/ticket", "slo/claims/ticket"]

    # periodic() (what `flightlog watch` calls) is throttled and never raises
    periodic(store, engine, cfg, force=True, keep_counts=True)
