"""OpenInference spans as OTLP protobuf messages, written by hand (ids, times and attributes
chosen by the caller), and the OTLP/HTTP request body that carries them: the hand-off and
data-edge traces of ``bench/handoff_cost.py`` and of the tests that send such traces to real
servers (``tests/integration/store/two_servers.py``, ``tests/integration/server``)."""

from __future__ import annotations

from typing import Any

T0 = 1_700_000_000_000_000_000
MS = 1_000_000


def span(
    trace: str,
    sid: str,
    parent: str | None,
    kind: str,
    start: int,
    end: int,
    *,
    error: bool = False,
    **attrs: str,
) -> Any:
    """A span of ``trace`` (hex id) with id ``sid``, its OpenInference ``kind`` as its
    name, from ``start`` to ``end`` milliseconds after ``T0``, status error or OK; its
    ``input.value`` unique to the trace and span unless ``attrs`` set one."""
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

    attrs = {"openinference.span.kind": kind, "input.value": f"q-{trace[:8]}-{sid[-1]}", **attrs}
    return Span(
        trace_id=bytes.fromhex(trace),
        span_id=bytes.fromhex(sid),
        parent_span_id=bytes.fromhex(parent) if parent else b"",
        name=kind.lower(),
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=T0 + start * MS,
        end_time_unix_nano=T0 + end * MS,
        attributes=[KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attrs.items()],
        status=Status(code=Status.STATUS_CODE_ERROR if error else Status.STATUS_CODE_OK),
    )


def body(spans: list[Any]) -> bytes:
    """An OTLP/HTTP protobuf request body of ``spans`` (one resource, service ``c``)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans

    resource = {"attributes": [KeyValue(key="service.name", value=AnyValue(string_value="c"))]}
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=spans)])]  # type: ignore[arg-type]
    ).SerializeToString()
