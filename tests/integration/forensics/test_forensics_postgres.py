"""Detection, attribution (and its record) and reports on the PostgreSQL store."""

from __future__ import annotations

from tests.scenarios import run_suite

SOME = [
    "claims-empty-retrieval",
    "travel-wrong-price",
    "research-planner-loop",
    "support-crm-timeouts",
    "invoice-stale-vendor-cache",
]


def test_scenarios_attribute_on_postgres(pg_url: str) -> None:
    from flightlog.app import open_store
    from flightlog.forensics.ledger import stored_attribution
    from flightlog.forensics.report import postmortem, render

    outcomes = run_suite(pg_url, history=8, only=SOME)
    assert [o.scenario.name for o in outcomes] == SOME
    for o in outcomes:
        assert o.step_ok and o.agent_ok, o.attribution["summary"]
    store = open_store(pg_url)
    try:
        for o in outcomes:
            stored = stored_attribution(store, o.run_id)  # kept by the run-end hook
            assert stored is not None and stored.root_cause is not None
            assert stored.root_cause.name == o.scenario.step
            assert {f.detector for f in store.get_findings(o.run_id)} - {"check"}
        html = render(postmortem(store, outcomes[0].run_id), "html")
        assert "search_policy" in html
    finally:
        store.close()
