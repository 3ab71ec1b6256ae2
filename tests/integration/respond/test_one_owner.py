"""One owner resolution: a ``tool =`` rule names the owner of a tool step the same way for
the attribution (``why``), the postmortem, the incident, the reliability board and SLO burn
alerts. The board and SLO alerts used to ask without the step's kind, so a tool step whose
only matching rule was a ``tool =`` rule went to the catch-all team there and to the tool's
team everywhere else."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

import flightlog
from flightlog.forensics.report import postmortem
from flightlog.reliability import reliability
from flightlog.reliability.burn_alerts import sync
from flightlog.reliability.settings import load_reliability_settings, owner_resolver
from flightlog.reliability.slo import evaluate_all
from flightlog.respond.clock import ManualClock
from flightlog.respond.config import load_respond_config
from flightlog.respond.engine import Engine
from flightlog.respond.incidents import list_incidents
from flightlog.store import open_store

from .conftest import claims_run

CONFIG = """\
[teams.platform]
channels = []

[teams.search-team]
channels = []

[[owners]]
team = "platform"

[[owners]]
tool = "search_*"
team = "search-team"

[[slo]]
workflow = "claims-triage"
step = "search_policy"
target = 0.99
min_runs = 1
name = "search"
"""


def test_a_tool_rule_names_the_same_owner_everywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "flightlog.toml"
    cfg.write_text(CONFIG)
    monkeypatch.setenv("FLIGHTLOG_CONFIG", str(cfg))
    db = tmp_path / "flightlog.db"
    flightlog.configure(f"sqlite:///{db}")
    try:
        for i in range(5):
            claims_run(f"claim {i}")
        broken = [claims_run(f"flooded basement {i}", broken=True) for i in range(3)]
        assert flightlog.flush(30)
        why = flightlog.why(broken[0])
    finally:
        flightlog.shutdown()
    # search_policy is a tool step recorded without an owner: only the tool rule names one
    assert why.root_cause is not None and why.root_cause.name == "search_policy"
    assert why.root_cause.owner == "search-team"

    store = open_store(f"sqlite:///{db}")
    try:
        pm = postmortem(store, broken[0])
        assert pm["owners"]["root_cause_step"] == "search-team (owners rule 2)"

        engine = Engine(store, load_respond_config(cfg), clock=ManualClock())
        engine.process_runs(broken)
        with store.transaction() as tx:
            incidents = list_incidents(tx)
        failures = {i.root_cause_team for i in incidents if not i.fingerprint.startswith("slo/")}
        assert failures == {"search-team"}

        board = reliability(store, owners=owner_resolver(cfg))
        (claims,) = [w for w in board.workflows if w.workflow == "claims-triage"]
        assert [s.name for s in claims.by_owner] == ["search-team"]

        slos = load_reliability_settings(cfg).slos
        assert sync(engine, evaluate_all(store, slos, engine.clock.now_ns()))["opened"] >= 1
        with store.transaction() as tx:
            incidents = list_incidents(tx)
        burns = {i.root_cause_team for i in incidents if i.fingerprint.startswith("slo/")}
        assert burns == {"search-team"}
    finally:
        store.close()


@flightlog.step(kind="tool", agent="retriever", owner="retrieval-team")
def lookup(query: str, broken: bool) -> list[str]:
    if broken:
        raise ConnectionError("index unavailable")
    return [f"clause for {query}"]


def test_an_owner_given_in_code_is_the_slo_burns_owner_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step's owner= in code wins over the rules for its failures; a burn of that step's
    SLO went by the rules alone (the demo's search_policy SLO told claims-team while its
    failures paged search-team)."""
    cfg = tmp_path / "flightlog.toml"
    cfg.write_text(
        "[teams.platform]\nchannels = []\n[teams.retrieval-team]\nchannels = []\n"
        '[[owners]]\nteam = "platform"\n'
        '[[slo]]\nworkflow = "lookups"\nstep = "lookup"\ntarget = 0.99\nmin_runs = 1\n'
    )
    monkeypatch.setenv("FLIGHTLOG_CONFIG", str(cfg))
    db = tmp_path / "flightlog.db"
    flightlog.configure(f"sqlite:///{db}")
    try:
        for i in range(6):
            with contextlib.suppress(ConnectionError), flightlog.run("lookups"):
                lookup(f"q{i}", broken=i >= 3)
        assert flightlog.flush(30)
    finally:
        flightlog.shutdown()
    store = open_store(f"sqlite:///{db}")
    try:
        engine = Engine(store, load_respond_config(cfg), clock=ManualClock())
        slos = load_reliability_settings(cfg).slos
        assert sync(engine, evaluate_all(store, slos, engine.clock.now_ns()))["opened"] >= 1
        with store.transaction() as tx:
            burns = {
                i.root_cause_team for i in list_incidents(tx) if i.fingerprint.startswith("slo/")
            }
        assert burns == {"retrieval-team"}
    finally:
        store.close()
