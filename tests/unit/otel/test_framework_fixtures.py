"""Recorded OTLP payloads of real frameworks (tests/data/otlp/<framework>/, see the README
there) decoded and ingested by the real ingestion queue into a SQLite store: every run must
come out as the live framework suite (tests/integration/frameworks) requires, without the
frameworks installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from flightlog.otel.decode import decode
from flightlog.server.ingest import Ingestor
from flightlog.store import open_store
from tests.integration.frameworks.expectations import FAULTS, FRAMEWORKS
from tests.integration.frameworks.outcomes import outcomes

DATA = Path(__file__).resolve().parents[2] / "data" / "otlp"
SCENARIOS = ("ok_1", "ok_2", "ok_3", *FAULTS)


@pytest.mark.parametrize("name", sorted(FRAMEWORKS))
def test_recorded_framework_runs_are_judged_right(name: str, tmp_path: Path) -> None:
    fw = FRAMEWORKS[name]
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
    got = outcomes(store)
    assert len(got) == len(SCENARIOS)
    table = [(o.status, o.failure_point, o.root_cause) for o in got]
    want = [
        (
            fw.status(s),
            fw.failure_point(s),
            None if s.startswith("ok") else "lookup_policy",
        )
        for s in SCENARIOS
    ]
    assert table == want
    for o in got:
        assert fw.agents <= set(o.agents), o.agents
        assert o.input_tokens > 0 and o.output_tokens > 0
