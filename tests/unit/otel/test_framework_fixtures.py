"""Recorded OTLP payloads of real frameworks (tests/data/otlp/<framework>/, see the README
there) decoded and ingested by the real ingestion queue into a SQLite store: every run must
come out as the live framework suite (tests/integration/frameworks) requires, without the
frameworks installed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from flightlog.app import open_store
from flightlog.otel.decode import decode
from flightlog.server.ingest import Ingestor
from tests.integration.frameworks.expectations import FAULTS, FRAMEWORKS
from tests.integration.frameworks.outcomes import outcomes

DATA = Path(__file__).resolve().parents[2] / "data" / "otlp"
SCENARIOS = ("ok_1", "ok_2", "ok_3", *FAULTS)


def _replay(name: str, tmp_path: Path) -> list[Any]:
    store = open_store(f"sqlite:///{tmp_path / 'fixtures.db'}")
    ingestor = Ingestor(store)
    try:
        for scenario in SCENARIOS:
            body = (DATA / name / f"{scenario}.json").read_bytes()
            result = decode(body, "application/json")
            assert result.rejected_spans == 0, result.error_message()
            ingestor.submit(result).result(timeout=60)
    finally:
        ingestor.close()
    return outcomes(store)


@pytest.mark.parametrize("name", sorted(FRAMEWORKS))
def test_recorded_framework_runs_are_judged_right(name: str, tmp_path: Path) -> None:
    fw = FRAMEWORKS[name]
    got = _replay(name, tmp_path)
    assert len(got) == len(SCENARIOS)
    table = [(o.status, o.failure_point, o.root_cause) for o in got]
    want = [
        (
            fw.status(s),
            fw.failure_point(s),
            fw.root_cause(s),
        )
        for s in SCENARIOS
    ]
    assert table == want
    for o in got:
        assert fw.agents <= set(o.agents), o.agents
        if fw.root_agent and o.root_cause:
            assert o.root_agent == fw.root_agent, (o.root_cause, o.root_agent)
        assert o.input_tokens > 0 and o.output_tokens > 0


def test_late_spans_derive_the_status_again_and_the_ledger_agrees(tmp_path: Path) -> None:
    """The Agents SDK's root span is OK; when it arrives first, alone, the run looks like a
    success until its agent and tool spans (ERROR) arrive: the status is derived again from
    the whole trace, logged again, and the audit trail still verifies."""
    import json

    from flightlog.ledger import attach
    from flightlog.ledger.verify import verify

    doc = json.loads((DATA / "openai_agents" / "raises.json").read_text())
    spans = [sp for rs in doc["resourceSpans"] for ss in rs["scopeSpans"] for sp in ss["spans"]]
    root = [sp for sp in spans if not sp.get("parentSpanId")]
    rest = [sp for sp in spans if sp.get("parentSpanId")]
    assert len(root) == 1 and rest

    def body(part: list[dict[str, object]]) -> bytes:
        return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": part}]}]}).encode()

    from flightlog.forensics.ledger import stored_attribution

    store = open_store(f"sqlite:///{tmp_path / 'late.db'}")
    ingestor = Ingestor(store)
    try:
        ingestor.submit(decode(body(root), "application/json")).result(timeout=60)
        [early] = store.list_runs()
        assert early.status == "succeeded"  # all that is known yet
        ingestor.submit(decode(body(rest), "application/json")).result(timeout=60)
        # The run goes through the run-end stages again (on the pipeline thread): its
        # attribution is stored and audited.
        deadline = time.monotonic() + 60
        while stored_attribution(store, early.id) is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        ingestor.close()
    [run] = store.list_runs()
    assert run.status == "failed"
    assert {s.id: s.name for s in store.get_steps(run.id)}[run.failed_step_id] == "lookup_policy"
    att = stored_attribution(store, run.id)
    assert att is not None and att.root_cause is not None
    assert att.root_cause.name == "lookup_policy"
    report = verify(attach(store))  # type: ignore[arg-type]
    assert report.ok, report
