"""What the two-servers-on-one-PostgreSQL tests share: an OTLP protobuf body of spans, and
sending one body to each server at the same moment (the ``servers`` fixture: conftest.py)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bench.pg_scaleout import Server  # noqa: E402


def body(spans: list[Span]) -> bytes:
    resource = {"attributes": [KeyValue(key="service.name", value=AnyValue(string_value="c"))]}
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=spans)])  # type: ignore[arg-type]
        ]
    ).SerializeToString()


def post_at_once(pair: list[tuple[Server, bytes]]) -> None:
    """Post each body to its server, released together by a barrier; both must answer 200."""
    import httpx

    start = threading.Barrier(len(pair))
    answers: list[int] = []

    def send(server: Server, content: bytes) -> None:
        with httpx.Client() as client:
            start.wait()
            r = client.post(
                server.url + "/v1/traces",
                content=content,
                headers={"Content-Type": "application/x-protobuf"},
                timeout=120,
            )
            answers.append(r.status_code)

    threads = [threading.Thread(target=send, args=p) for p in pair]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert answers == [200] * len(pair)
