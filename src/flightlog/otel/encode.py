"""Flightlog records -> OTLP (``ExportTraceServiceRequest``), for the remote SDK.

A run becomes a root span whose span id is derived from the run id
(``conventions.run_span_id``); each step becomes a span under it (top-level steps are
children of the run span). What OTel has no name for travels in ``flightlog.*``
attributes; payloads travel as ``flightlog.payload`` events, edges as span links (or
``flightlog.edge`` events when the target span is not in the batch), findings as
``gen_ai.evaluation.result`` events. Standard GenAI attributes (model, provider, tokens,
agent, operation) are written too, so an OpenTelemetry Collector or another backend sees
a conventional trace. ``flightlog.otel.decode`` reverses this exactly.
"""

from __future__ import annotations

import hashlib
from typing import Any

from flightlog import _json
from flightlog.model import Batch, Edge, Finding, Payload, Run, Step
from flightlog.otel import conventions as C
from flightlog.otel._values import set_any_value

STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2
SPAN_KIND_INTERNAL = 1


def _set(span_or_event: Any, key: str, value: Any) -> None:
    if value is None:
        return
    kv = span_or_event.attributes.add()
    kv.key = key
    set_any_value(kv.value, value)


def _carrier_id(run_id: str) -> str:
    return hashlib.sha256(b"flightlog-carrier:" + run_id.encode()).hexdigest()[:16]


_PAYLOAD_ONLY_TRACE = hashlib.sha256(b"flightlog-payloads").hexdigest()[:32]


def encode(batch: Batch, *, service: str | None = None) -> Any:
    """An ``ExportTraceServiceRequest`` carrying every record of ``batch``."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    _set(rs.resource, "service.name", service or "flightlog")
    ss = rs.scope_spans.add()
    ss.scope.name = "flightlog"
    spans: dict[tuple[str, str], Any] = {}  # (run id, span id) -> span message

    def carrier(run_id: str) -> Any:
        key = (run_id, _carrier_id(run_id))
        if key not in spans:
            span = ss.spans.add()
            span.trace_id = bytes.fromhex(run_id)
            span.span_id = bytes.fromhex(key[1])
            span.name = "flightlog.carrier"
            span.kind = SPAN_KIND_INTERNAL
            _set(span, C.FL_RECORD, "carrier")
            spans[key] = span
        return spans[key]

    for run in batch.runs:
        spans[(run.id, C.run_span_id(run.id))] = _run_span(ss.spans.add(), run)
    for step in batch.steps:
        spans[(step.run_id, step.id)] = _step_span(ss.spans.add(), step)

    # Payloads ride on the first span that references them.
    owner: dict[str, Any] = {}
    for run in batch.runs:
        for h in (run.input_hash, run.output_hash):
            if h:
                owner.setdefault(h, spans[(run.id, C.run_span_id(run.id))])
    for step in batch.steps:
        for h in (step.input_hash, step.output_hash):
            if h:
                owner.setdefault(h, spans[(step.run_id, step.id)])
    fallback_run = (
        batch.runs[0].id if batch.runs else batch.steps[0].run_id if batch.steps else None
    )
    for p in batch.payloads:
        span = owner.get(p.hash)
        if span is None:
            span = carrier(fallback_run or _PAYLOAD_ONLY_TRACE)
        _payload_event(span, p)

    for e in batch.edges:
        target = spans.get((e.run_id, e.target))
        if target is not None and _is_span_id(e.source):
            _edge_link(target, e)
        else:
            _edge_event(carrier(e.run_id), e)

    for f in batch.findings:
        span = None
        if f.step_id is not None:
            span = spans.get((f.run_id, f.step_id))
        if span is None:
            span = spans.get((f.run_id, C.run_span_id(f.run_id))) or carrier(f.run_id)
        _finding_event(span, f)
    return req


def encode_bytes(batch: Batch, *, service: str | None = None) -> bytes:
    """``encode`` serialized as OTLP protobuf bytes."""
    data: bytes = encode(batch, service=service).SerializeToString()
    return data


def _is_span_id(value: str) -> bool:
    if len(value) != 16:
        return False
    try:
        return int(value, 16) != 0
    except ValueError:
        return False


def _run_span(span: Any, run: Run) -> Any:
    span.trace_id = bytes.fromhex(run.id)
    span.span_id = bytes.fromhex(C.run_span_id(run.id))
    span.name = run.workflow
    span.kind = SPAN_KIND_INTERNAL
    span.start_time_unix_nano = run.started_ns
    span.end_time_unix_nano = run.ended_ns or 0
    if run.status == "failed":
        span.status.code = STATUS_ERROR
        span.status.message = run.reason or ""
    elif run.status == "succeeded":
        span.status.code = STATUS_OK
    _set(span, C.FL_RECORD, "run")
    _set(span, C.FL_RUN_WORKFLOW, run.workflow)
    _set(span, C.FL_RUN_STATUS, run.status)
    if run.ended_ns is None:
        _set(span, C.FL_OPEN, True)
    _set(span, C.FL_RUN_VERSION, run.version)
    _set(span, C.FL_RUN_OWNER, run.owner)
    _set(span, C.FL_RUN_SERVICE, run.service)
    _set(span, C.FL_INPUT_HASH, run.input_hash)
    _set(span, C.FL_OUTPUT_HASH, run.output_hash)
    _set(span, C.FL_RUN_REASON, run.reason)
    _set(span, C.FL_RUN_FAILED_STEP, run.failed_step_id)
    if run.error is not None:
        _set(span, C.FL_ERROR, _json.dumps(run.error.to_dict()))
        _set(span, C.ERROR_TYPE, run.error.type)
    _set(span, C.FL_RUN_DECLARED_STEPS, run.declared_steps)
    _set(span, C.FL_RUN_SOURCE, run.source)
    if run.attributes:
        _set(span, C.FL_ATTRIBUTES, _json.dumps(run.attributes))
    _set(span, C.GEN_AI_OPERATION_NAME, "invoke_agent")
    return span


def _step_span(span: Any, step: Step) -> Any:
    span.trace_id = bytes.fromhex(step.run_id)
    span.span_id = bytes.fromhex(step.id)
    span.parent_span_id = bytes.fromhex(step.parent_id or C.run_span_id(step.run_id))
    span.name = step.name
    span.kind = SPAN_KIND_INTERNAL
    span.start_time_unix_nano = step.started_ns
    span.end_time_unix_nano = step.ended_ns or 0
    if step.status == "error":
        span.status.code = STATUS_ERROR
        span.status.message = step.error.message if step.error else ""
    elif step.status == "ok":
        span.status.code = STATUS_OK
    _set(span, C.FL_RECORD, "step")
    _set(span, C.FL_STEP_KIND, step.kind)
    _set(span, C.FL_STEP_INDEX, step.index)
    _set(span, C.FL_STEP_STATUS, step.status)
    if step.ended_ns is None:
        _set(span, C.FL_OPEN, True)
    _set(span, C.FL_STEP_OWNER, step.owner)
    _set(span, C.GEN_AI_AGENT_NAME, step.agent)
    _set(span, C.GEN_AI_REQUEST_MODEL, step.model)
    _set(span, C.GEN_AI_PROVIDER_NAME, step.provider)
    _set(span, C.GEN_AI_USAGE_INPUT_TOKENS, step.input_tokens)
    _set(span, C.GEN_AI_USAGE_OUTPUT_TOKENS, step.output_tokens)
    _set(span, C.FL_STEP_COST, step.cost)
    _set(span, C.FL_INPUT_HASH, step.input_hash)
    _set(span, C.FL_OUTPUT_HASH, step.output_hash)
    if step.error is not None:
        _set(span, C.FL_ERROR, _json.dumps(step.error.to_dict()))
        _set(span, C.ERROR_TYPE, step.error.type)
    if step.attributes:
        _set(span, C.FL_ATTRIBUTES, _json.dumps(step.attributes))
    op = C.KIND_OPERATIONS.get(step.kind)
    if op:
        _set(span, C.GEN_AI_OPERATION_NAME, op)
    if step.kind == "tool":
        _set(span, C.GEN_AI_TOOL_NAME, step.name)
    return span


def _payload_event(span: Any, p: Payload) -> None:
    ev = span.events.add()
    ev.name = C.FL_PAYLOAD_EVENT
    ev.time_unix_nano = span.start_time_unix_nano
    _set(ev, C.FL_PAYLOAD_HASH, p.hash)
    try:
        _set(ev, C.FL_PAYLOAD_DATA, p.data.decode("utf-8"))
    except UnicodeDecodeError:
        _set(ev, C.FL_PAYLOAD_DATA, bytes(p.data))
    _set(ev, C.FL_PAYLOAD_SIZE, p.size)
    if p.truncated:
        _set(ev, C.FL_PAYLOAD_TRUNCATED, True)


def _edge_attrs(target: Any, e: Edge) -> None:
    _set(target, C.FL_EDGE_KIND, e.kind)
    _set(target, C.FL_EDGE_EVIDENCE, e.evidence)
    _set(target, C.FL_EDGE_DETAIL, e.detail)


def _edge_link(span: Any, e: Edge) -> None:
    link = span.links.add()
    link.trace_id = bytes.fromhex(e.run_id)
    link.span_id = bytes.fromhex(e.source)
    _edge_attrs(link, e)


def _edge_event(span: Any, e: Edge) -> None:
    ev = span.events.add()
    ev.name = C.FL_EDGE_EVENT
    _set(ev, C.FL_EDGE_SOURCE, e.source)
    _set(ev, C.FL_EDGE_TARGET, e.target)
    _edge_attrs(ev, e)


def _finding_event(span: Any, f: Finding) -> None:
    ev = span.events.add()
    ev.name = C.GEN_AI_EVALUATION_EVENT
    ev.time_unix_nano = f.created_ns
    _set(ev, C.GEN_AI_EVALUATION_NAME, f.detector)
    _set(ev, C.GEN_AI_EVALUATION_EXPLANATION, f.message)
    _set(
        ev,
        C.GEN_AI_EVALUATION_SCORE_LABEL,
        "fail" if f.severity in ("error", "critical") else f.severity,
    )
    _set(ev, C.FL_FINDING_ID, f.id)
    _set(ev, C.FL_FINDING_SEVERITY, f.severity)
    _set(ev, C.FL_FINDING_STEP, f.step_id)
    _set(ev, C.FL_FINDING_EVIDENCE, _json.dumps(f.evidence))
    _set(ev, C.FL_FINDING_KIND, f.kind)
