"""Property-based API testing with schemathesis: every route in ``/openapi.json`` answers
as documented (status codes, content types, response schemas) and never with a 5xx."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from flightlog.app import open_store
from flightlog.model import Batch, Edge, Finding, Run, Step
from flightlog.server import create_app

RUN = "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    db: Path = tmp_path_factory.mktemp("api") / "api.db"
    store = open_store(f"sqlite:///{db}")
    store.write(
        Batch(
            runs=[
                Run(
                    id=RUN,
                    workflow="claims",
                    started_ns=10,
                    status="failed",
                    ended_ns=20,
                    owner="team",
                )
            ],
            steps=[
                Step(
                    run_id=RUN,
                    id="b7ad6b7169203331",
                    name="search",
                    kind="tool",
                    index=1,
                    started_ns=11,
                    ended_ns=12,
                ),
                Step(
                    run_id=RUN,
                    id="c7ad6b7169203332",
                    name="answer",
                    kind="llm",
                    index=2,
                    started_ns=13,
                    ended_ns=14,
                    status="error",
                ),
            ],
            edges=[Edge(RUN, "b7ad6b7169203331", "c7ad6b7169203332", "data", "content")],
            findings=[
                Finding(
                    id="f1",
                    run_id=RUN,
                    detector="check",
                    severity="error",
                    message="bad",
                    step_id="c7ad6b7169203332",
                    created_ns=15,
                )
            ],
        )
    )
    store.close()
    return create_app(f"sqlite:///{db}", allowed_hosts=("testserver",))


def test_api_conforms_to_its_openapi_document(app) -> None:  # type: ignore[no-untyped-def]
    from hypothesis import given

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    checked = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def check(case) -> None:  # type: ignore[no-untyped-def]
            # The OTLP/JSON body's schema is the OTLP protobuf's JSON mapping
            # (opentelemetry-proto), which the document names rather than restates: "an
            # object" there does not promise that any object is a valid export, so a
            # schema-valid body may be refused with 400. Malformed OTLP bodies are tested in
            # tests/integration/server/test_bad_input.py.
            otlp = case.operation.label == "POST /v1/traces"
            case.call_and_validate(excluded_checks=[positive_data_acceptance] if otlp else [])

        check()
        checked.append(operation.label)
    assert "GET /api/v1/runs" in checked


def test_every_ingest_stat_is_described(tmp_path: Path) -> None:
    """Every counter the stats endpoint answers is in its OpenAPI schema (schemathesis does
    not flag properties a schema leaves out)."""
    from starlette.testclient import TestClient

    app = create_app(f"sqlite:///{tmp_path / 'stats.db'}", allowed_hosts=("testserver",))
    with TestClient(app) as client:
        stats = client.get("/api/v1/ingest/stats").json()
        spec = client.get("/openapi.json").json()
    schema = spec["paths"]["/api/v1/ingest/stats"]["get"]["responses"]["200"]
    props = schema["content"]["application/json"]["schema"]["properties"]
    assert sorted(set(stats) - set(props)) == []
