"""OTLP traces -> Flightlog records.

``parse_request`` turns an HTTP body (OTLP protobuf or OTLP/JSON) into an
``ExportTraceServiceRequest``; ``request_to_batch`` maps its spans onto runs, steps, edges,
payloads and findings following the OTel GenAI and OpenInference conventions (see
``docs/otel.md`` for the table). Spans that Flightlog itself encoded (attribute
``flightlog.record``) are decoded exactly, so ``decode(encode(batch)) == batch``.

Invalid spans (ids of the wrong length, oversized attribute values) are rejected one by one
and counted, so a request can succeed partially as OTLP allows.

Size: one module on purpose, over 500 lines: it is the mapping table of docs/otel.md in
code, so a convention is read in one place; parsing the body and handing off edges could
move out if it grows.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

import orjson

from flightlog.errors import InputError
from flightlog.lineage import handoff_edges
from flightlog.model import Batch, Edge, ErrorInfo, Finding, Payload, Run, Step
from flightlog.otel import _json_request, _values
from flightlog.otel import conventions as C
from flightlog.otel._values import PAYLOAD_CAP, any_value_to_python, approx_size
from flightlog.payload import encode_value, make_payload
from flightlog.status import apply_derived_status

STATUS_ERROR = 2
SPAN_KIND_NAMES = {
    0: "unspecified",
    1: "internal",
    2: "server",
    3: "client",
    4: "producer",
    5: "consumer",
}
MAX_KEPT_EVENTS = 100
MAX_ERRORS_REPORTED = 5


@dataclass
class DecodeResult:
    """What one OTLP request became.

    ``placeholder_runs``: runs present only because a non-root span of theirs arrived; their
    ``Run`` record stands in (status ``running``) until the root span arrives and must not
    overwrite a run already stored. ``ended_runs``: runs whose root span (or Flightlog run
    record with a final status) is in this request. ``inferred_runs``: runs with spans from
    other instrumentations, whose step order and data edges are inferred, not declared.
    """

    batch: Batch
    accepted_spans: int = 0
    rejected_spans: int = 0
    errors: list[str] = field(default_factory=list)
    placeholder_runs: set[str] = field(default_factory=set)
    ended_runs: list[str] = field(default_factory=list)
    inferred_runs: set[str] = field(default_factory=set)

    def error_message(self) -> str:
        if not self.errors:
            return ""
        more = self.rejected_spans - len(self.errors)
        text = "; ".join(self.errors)
        return text + (f"; and {more} more" if more > 0 else "")


# -- parsing the HTTP body ----------------------------------------------------------------


def parse_request(body: bytes, content_type: str) -> Any:
    """An ``ExportTraceServiceRequest`` from an OTLP/HTTP body. Raises ``InputError``."""
    from google.protobuf import json_format
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    ctype = content_type.split(";")[0].strip().lower()
    req = ExportTraceServiceRequest()
    if ctype == "application/x-protobuf":
        try:
            req.ParseFromString(body)
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise InputError(
                f"body is not a valid OTLP ExportTraceServiceRequest protobuf ({exc})"
            ) from exc
        return req
    if ctype == "application/json":
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InputError(
                f"body is not valid JSON ({exc}); expected an OTLP/JSON ExportTraceServiceRequest"
            ) from exc
        if not isinstance(doc, dict):
            raise InputError(f"OTLP/JSON body must be an object, got {type(doc).__name__}")
        try:  # the fast path, for what exporters write; else json_format (and its errors)
            _json_request.fill(req, doc)
            return req
        except _json_request.Unsupported:
            req = ExportTraceServiceRequest()
        _hex_ids_to_base64(doc)
        try:
            json_format.ParseDict(doc, req, ignore_unknown_fields=True)
        except (json_format.ParseError, RecursionError, ValueError, TypeError) as exc:
            raise InputError(f"body is not an OTLP/JSON ExportTraceServiceRequest: {exc}") from exc
        return req
    raise InputError(
        f"unsupported content type {content_type!r}; "
        "expected application/x-protobuf or application/json"
    )


_ID_KEYS = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")


def _hex_ids_to_base64(doc: dict[str, Any]) -> None:
    """OTLP/JSON writes ids as hex (not protobuf-JSON's base64): rewrite them in place."""

    def fix(obj: Any, where: str) -> None:
        if not isinstance(obj, dict):
            return
        for key in _ID_KEYS:
            val = obj.get(key)
            if isinstance(val, str):
                problem = _hex_problem(val)
                if problem is not None:
                    raise InputError(
                        f"{where}.{key}: {val[:40]!r} {problem}; OTLP/JSON ids are hex digits "
                        "only (32 for traceId, 16 for spanId; parentSpanId 16 or empty)"
                    )
                obj[key] = base64.b64encode(bytes.fromhex(val)).decode()

    for i, rs in enumerate(_items(doc, "resourceSpans", "resource_spans")):
        for j, ss in enumerate(_items(rs, "scopeSpans", "scope_spans")):
            for k, span in enumerate(_items(ss, "spans")):
                where = f"resourceSpans[{i}].scopeSpans[{j}].spans[{k}]"
                fix(span, where)
                for m, link in enumerate(_items(span, "links")):
                    fix(link, f"{where}.links[{m}]")


def _hex_problem(text: str) -> str | None:
    """What makes ``text`` other than hex digits, two per byte; None if it is not. (Not
    ``bytes.fromhex`` alone: it skips whitespace.)"""
    for i, c in enumerate(text):
        if c not in _HEX_DIGITS:
            if c.isspace():
                return f"contains whitespace (at position {i})"
            return f"is not hexadecimal ({c!r} at position {i})"
    if len(text) % 2:
        return f"has an odd number of hex digits ({len(text)})"
    return None


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _items(obj: Any, *keys: str) -> list[Any]:
    if not isinstance(obj, dict):
        return []
    for key in keys:
        val = obj.get(key)
        if isinstance(val, list):
            return val
    return []


# -- mapping spans to records ---------------------------------------------------------------


@dataclass(slots=True)
class _Span:
    """One decoded, validated span with its context."""

    trace: str
    id: str
    parent: str | None
    name: str
    kind: int
    start: int
    end: int
    attrs: dict[str, Any]
    raw: Any
    service: str | None
    resource: dict[str, Any]
    scope: str
    links: Any  # raw.links, read once


_SCALARS = frozenset({"bool_value", "int_value", "double_value"})


def attributes_to_dict(kvs: Iterable[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        v = kv.value
        # Strings first, inline: most attributes are. A text that is not empty can only be
        # the oneof's string member (one read, no WhichOneof); else the other scalars, read
        # by the oneof's name (an empty string too), the rest as any_value_to_python
        text = v.string_value
        if text:
            out[kv.key] = text
            continue
        which = v.WhichOneof("value")
        if which == "string_value":
            out[kv.key] = text
        elif which in _SCALARS:
            out[kv.key] = getattr(v, which)
        else:
            out[kv.key] = any_value_to_python(v)
    return out


def _span_attributes(kvs: Iterable[Any]) -> tuple[dict[str, Any], bool]:
    """``attributes_to_dict`` of a span, and whether ``_check_sizes`` has anything to look at
    (a string over the attribute limit, or a value that is not a scalar)."""
    out: dict[str, Any] = {}
    limit = _values.MAX_ATTRIBUTE_BYTES
    check = False
    for kv in kvs:
        v = kv.value
        text = v.string_value  # (as in attributes_to_dict: not empty, it is the string)
        if text:
            out[kv.key] = text
            if len(text) > limit:
                check = True
            continue
        which = v.WhichOneof("value")
        if which == "string_value":
            out[kv.key] = text
        elif which in _SCALARS:
            out[kv.key] = getattr(v, which)
        else:
            out[kv.key] = any_value_to_python(v)
            check = True
    return out, check


_ZERO16 = bytes(16)
_ZERO8 = bytes(8)


def _check_ids(span: Any) -> str | None:
    tid, sid, pid = span.trace_id, span.span_id, span.parent_span_id
    if (
        len(tid) == 16
        and tid != _ZERO16
        and len(sid) == 8
        and sid != _ZERO8
        and (not pid or len(pid) == 8)
    ):
        return None
    name = span.name[:80]
    if len(span.trace_id) != 16 or not any(span.trace_id):
        return (
            f"span {name!r}: trace_id has {len(span.trace_id)} bytes"
            f"{' (all zero)' if len(span.trace_id) == 16 else ''}; "
            "expected 16 non-zero bytes (32 hex digits)"
        )
    if len(span.span_id) != 8 or not any(span.span_id):
        return (
            f"span {name!r}: span_id has {len(span.span_id)} bytes"
            f"{' (all zero)' if len(span.span_id) == 8 else ''}; "
            "expected 8 non-zero bytes (16 hex digits)"
        )
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return (
            f"span {name!r}: parent_span_id has {len(span.parent_span_id)} bytes; "
            "expected 8 (16 hex digits) or empty for a root span"
        )
    return None


def _check_links(span: Any, links: Any) -> str | None:
    """Why a link of ``span`` has ids of a wrong length, or None. Empty ids are taken (an
    invalid span context, which OTel records when the link has attributes): a link
    without a span id links nothing."""
    for i, link in enumerate(links):
        for name, size in (("trace_id", 16), ("span_id", 8)):
            n = len(getattr(link, name))
            if n and n != size:
                return (
                    f"span {span.name[:80]!r}: links[{i}].{name} has {n} bytes; expected "
                    f"{size} ({2 * size} hex digits)"
                )
    return None


def _check_sizes(name: str, attrs: dict[str, Any]) -> str | None:
    limit = _values.MAX_ATTRIBUTE_BYTES
    for key, value in attrs.items():
        if type(value) is str:
            if len(value) <= limit or key in C.PAYLOAD_KEYS:
                continue
        elif key in C.PAYLOAD_KEYS or type(value) in (int, float, bool):
            continue
        size = approx_size(value)
        if size > _values.MAX_ATTRIBUTE_BYTES:
            return (
                f"span {name[:80]!r}: attribute {key[:80]!r} is {size} bytes; the limit is "
                f"{_values.MAX_ATTRIBUTE_BYTES} (send large content as input.value / "
                "output.value, which are stored with truncation)"
            )
    return None


def request_to_batch(req: Any, *, infer_edges: bool = True) -> DecodeResult:
    """Map an ``ExportTraceServiceRequest`` onto Flightlog records."""
    result = DecodeResult(batch=Batch())
    spans: list[_Span] = []
    for rs in req.resource_spans:
        resource = attributes_to_dict(rs.resource.attributes)
        service = resource.get("service.name")
        service = str(service) if service is not None else None
        for ss in rs.scope_spans:
            scope = ss.scope.name
            for span in ss.spans:
                tid, sid, pid = span.trace_id, span.span_id, span.parent_span_id
                attrs: dict[str, Any] = {}
                if (
                    len(tid) == 16
                    and tid != _ZERO16
                    and len(sid) == 8
                    and sid != _ZERO8
                    and (not pid or len(pid) == 8)
                ):
                    links = span.links
                    problem = _check_links(span, links) if links else None
                    if problem is None:
                        attrs, check = _span_attributes(span.attributes)
                        if check:
                            problem = _check_sizes(span.name, attrs)
                else:
                    problem = _check_ids(span)
                if problem is not None:
                    result.rejected_spans += 1
                    if len(result.errors) < MAX_ERRORS_REPORTED:
                        result.errors.append(problem)
                    continue
                # (positional, in _Span's order; upb gives the enum and the times as int)
                spans.append(
                    _Span(
                        tid.hex(),
                        sid.hex(),
                        # (eight zero bytes are OTLP's invalid span id: no parent, a root)
                        pid.hex() if pid and pid != _ZERO8 else None,
                        span.name,
                        span.kind,
                        span.start_time_unix_nano,
                        span.end_time_unix_nano,
                        attrs,
                        span,
                        service,
                        resource,
                        scope,
                        links,
                    )
                )
    result.accepted_spans = len(spans)
    by_trace: dict[str, list[_Span]] = defaultdict(list)
    for s in spans:
        by_trace[s.trace].append(s)
    payloads: dict[str, Payload] = {}
    texts: dict[tuple[str, bool], str | None] = {}
    for trace, tspans in by_trace.items():
        _map_trace(trace, tspans, result, payloads, texts)
    result.batch.payloads.extend(payloads.values())
    if infer_edges:
        from flightlog.lineage import infer_data_edges

        data = {p.hash: p.data for p in payloads.values()}
        for run_id in result.inferred_runs:
            steps = [s for s in result.batch.steps if s.run_id == run_id]
            result.batch.edges.extend(infer_data_edges(steps, data))
    return result


def _map_trace(
    trace: str,
    spans: list[_Span],
    result: DecodeResult,
    payloads: dict[str, Payload],
    texts: dict[tuple[str, bool], str | None],
) -> None:
    batch = result.batch
    run_span: str | None = None  # (a hash: computed for Flightlog's own steps only)
    run: Run | None = None
    foreign: list[tuple[_Span, Step]] = []
    for s in spans:
        record = s.attrs.get(C.FL_RECORD)
        if record == "run":
            run = _flightlog_run(s)
            batch.runs.append(run)
            if run.status != "running":
                result.ended_runs.append(run.id)
        elif record == "step":
            if run_span is None:
                run_span = C.run_span_id(trace)
            batch.steps.append(_flightlog_step(s, run_span))
        elif record == "carrier":
            pass
        else:
            step = _foreign_step(s, payloads, texts)
            batch.steps.append(step)
            foreign.append((s, step))
        _events_and_links(s, result, payloads, is_step=record not in ("run", "carrier"))

    if foreign:
        result.inferred_runs.add(trace)
        steps = [st for _, st in foreign]
        # Provisional order within this request; the server recomputes over the stored run.
        for i, st in enumerate(sorted(steps, key=lambda x: (x.started_ns, x.id)), 1):
            st.index = i
        # An agent's sub-steps belong to that agent: derived when read (the store), never
        # decided here, so a step's record does not depend on which request carried it.
        if any(REPLY_USAGE in st.attributes for st in steps):
            _drop_wrapping_replies(steps)
        batch.edges.extend(handoff_edges(steps))
        root = next(((s, st) for s, st in foreign if s.parent is None), None)
        if root is not None and run is None:
            run = _foreign_run(root[0], root[1], steps)
            batch.runs.append(run)
            result.ended_runs.append(run.id)
    if run is None and (foreign or any(s.attrs.get(C.FL_RECORD) == "step" for s in spans)):
        first = min(spans, key=lambda s: s.start)
        batch.runs.append(
            Run(
                id=trace,
                workflow=first.service or "unknown",
                started_ns=first.start,
                status="running",
                service=first.service,
                source="sdk" if not foreign else "otlp",
            )
        )
        result.placeholder_runs.add(trace)


# -- Flightlog's own spans (exact) --------------------------------------------------------


def _opt_str(attrs: dict[str, Any], key: str) -> str | None:
    v = attrs.get(key)
    return None if v is None else str(v)


_N = TypeVar("_N", int, float)


def _opt_int(attrs: dict[str, Any], key: str) -> int | None:
    return _opt_number(attrs, key, int)


def _opt_float(attrs: dict[str, Any], key: str) -> float | None:
    return _opt_number(attrs, key, float)


def _opt_number(attrs: dict[str, Any], key: str, cast: Callable[[Any], _N]) -> _N | None:
    """The attribute as a number, or None when absent, boolean or not numeric."""
    v = attrs.get(key)
    if v is None or isinstance(v, bool):
        return None
    try:
        return cast(v)
    except (TypeError, ValueError):
        return None


def _json_attr(attrs: dict[str, Any], key: str) -> Any:
    v = attrs.get(key)
    if not isinstance(v, str):
        return None
    try:
        return orjson.loads(v)
    except orjson.JSONDecodeError:
        return None


def _flightlog_run(s: _Span) -> Run:
    a = s.attrs
    return Run(
        id=s.trace,
        workflow=str(a.get(C.FL_RUN_WORKFLOW) or s.name),
        started_ns=s.start,
        status=str(a.get(C.FL_RUN_STATUS) or "unknown"),
        ended_ns=None if a.get(C.FL_OPEN) else s.end,
        version=_opt_str(a, C.FL_RUN_VERSION),
        owner=_opt_str(a, C.FL_RUN_OWNER),
        service=_opt_str(a, C.FL_RUN_SERVICE),
        input_hash=_opt_str(a, C.FL_INPUT_HASH),
        output_hash=_opt_str(a, C.FL_OUTPUT_HASH),
        reason=_opt_str(a, C.FL_RUN_REASON),
        failed_step_id=_opt_str(a, C.FL_RUN_FAILED_STEP),
        error=ErrorInfo.from_dict(_json_attr(a, C.FL_ERROR)),
        declared_steps=_opt_int(a, C.FL_RUN_DECLARED_STEPS),
        source=str(a.get(C.FL_RUN_SOURCE) or "sdk"),
        attributes=_json_attr(a, C.FL_ATTRIBUTES) or {},
    )


def _flightlog_step(s: _Span, run_span: str) -> Step:
    a = s.attrs
    parent = None if s.parent == run_span else s.parent
    return Step(
        run_id=s.trace,
        id=s.id,
        name=s.name,
        kind=str(a.get(C.FL_STEP_KIND) or "function"),
        index=_opt_int(a, C.FL_STEP_INDEX) or 0,
        started_ns=s.start,
        parent_id=parent,
        agent=_opt_str(a, C.GEN_AI_AGENT_NAME),
        owner=_opt_str(a, C.FL_STEP_OWNER),
        status=str(a.get(C.FL_STEP_STATUS) or "ok"),
        ended_ns=None if a.get(C.FL_OPEN) else s.end,
        input_hash=_opt_str(a, C.FL_INPUT_HASH),
        output_hash=_opt_str(a, C.FL_OUTPUT_HASH),
        error=ErrorInfo.from_dict(_json_attr(a, C.FL_ERROR)),
        model=_opt_str(a, C.GEN_AI_REQUEST_MODEL),
        provider=_opt_str(a, C.GEN_AI_PROVIDER_NAME),
        input_tokens=_opt_int(a, C.GEN_AI_USAGE_INPUT_TOKENS),
        output_tokens=_opt_int(a, C.GEN_AI_USAGE_OUTPUT_TOKENS),
        cost=_opt_float(a, C.FL_STEP_COST),
        attributes=_json_attr(a, C.FL_ATTRIBUTES) or {},
    )


# -- other instrumentations' spans (GenAI, OpenInference, plain OTel) ------------------------


def step_kind(attrs: dict[str, Any], name: str) -> str:
    """The Flightlog step kind of a span: OpenInference ``openinference.span.kind``, else
    GenAI ``gen_ai.operation.name``, else Traceloop ``traceloop.span.kind``, else the Vercel
    AI SDK's ``ai.operationId``, else Langfuse's ``langfuse.observation.type``, else what its
    attributes name (a tool, a model, an agent)."""
    oi = attrs.get(C.OI_SPAN_KIND)
    if isinstance(oi, str) and oi.upper() in C.OPENINFERENCE_KINDS:
        return C.OPENINFERENCE_KINDS[oi.upper()]
    op = attrs.get(C.GEN_AI_OPERATION_NAME)
    if isinstance(op, str) and op in C.GEN_AI_OPERATION_KINDS:
        return C.GEN_AI_OPERATION_KINDS[op]
    tl = attrs.get(C.TL_SPAN_KIND)
    if isinstance(tl, str) and tl.lower() in C.TRACELOOP_KINDS:
        return C.TRACELOOP_KINDS[tl.lower()]
    ai_op = attrs.get(C.AI_OPERATION_ID)
    if isinstance(ai_op, str) and (kind := C.ai_operation_kind(ai_op)) is not None:
        return kind
    lf = attrs.get(C.LF_OBSERVATION_TYPE)
    if isinstance(lf, str) and lf.lower() in C.LANGFUSE_KINDS:
        return C.LANGFUSE_KINDS[lf.lower()]
    if any(k in attrs for k in (C.GEN_AI_TOOL_NAME, C.OI_TOOL_NAME, C.AI_TOOL_NAME)):
        return "tool"
    if any(
        k in attrs for k in (C.GEN_AI_REQUEST_MODEL, C.OI_LLM_MODEL_NAME, C.TL_LLM_REQUEST_TYPE)
    ):
        return "llm"
    if _namespaced_tool_key(attrs) is not None:
        return "tool"
    if C.GEN_AI_AGENT_NAME in attrs or C.OI_AGENT_NAME in attrs:
        return "agent"
    if _component_agent(attrs) is not None:
        return "agent"
    return "function"


_METHOD_SUFFIXES = (
    ".run",
    ".arun",
    ".invoke",
    ".ainvoke",
    ".call",
    ".acall",
    ".__call__",
    ".execute",
)


def _bare_name(name: str) -> str:
    """A span name without a GenAI operation prefix (``invoke_agent claims`` -> ``claims``)
    or a trailing method (``claims.run`` -> ``claims``): what it names."""
    if name.startswith(C.GEN_AI_SPAN_NAME_PREFIXES):  # (one C call: most names have none)
        for prefix in C.GEN_AI_SPAN_NAME_PREFIXES:
            if name.startswith(prefix) and len(name) > len(prefix):
                name = name[len(prefix) :]
                break
    if name.endswith(_METHOD_SUFFIXES):
        for suffix in _METHOD_SUFFIXES:
            if name.endswith(suffix) and len(name) > len(suffix):
                return name[: -len(suffix)]
    return name


def _langgraph_node(attrs: dict[str, Any]) -> str | None:
    meta = attrs.get(C.OI_METADATA)
    if isinstance(meta, str) and "langgraph_node" in meta:
        try:
            doc = orjson.loads(meta)
        except orjson.JSONDecodeError:
            return None
        node = doc.get("langgraph_node") if isinstance(doc, dict) else None
        return str(node) if node else None
    if isinstance(meta, dict) and meta.get("langgraph_node"):
        return str(meta["langgraph_node"])
    return None


_TOOL_NAME_KEYS = (C.GEN_AI_TOOL_NAME, C.OI_TOOL_NAME, C.AI_TOOL_NAME)
_NAMESPACED_TOOL_NAME = ".tool.name"
_COMPONENT_TYPE = ".component.type"


def _component_agent(attrs: dict[str, Any]) -> str | None:
    """The name of a pipeline component whose type is an agent, under an instrumentation's
    own namespace: ``<ns>.component.type`` a class name ending in ``Agent`` (``Agent``,
    ``ReActAgent``) and ``<ns>.component.name`` beside it (Haystack's tracer:
    ``haystack.component.name``): the agent, named as the pipeline names it."""
    for key, value in attrs.items():
        if key.endswith(_COMPONENT_TYPE) and isinstance(value, str) and value.endswith("Agent"):
            name = attrs.get(key[: -len("type")] + "name")
            if isinstance(name, str) and name:
                return name
    return None


def _namespaced_tool_key(attrs: dict[str, Any]) -> str | None:
    """The key naming a tool under an instrumentation's own namespace (``<ns>.tool.name``,
    Haystack's tracer: ``haystack.tool.name``) when no convention's key names it."""
    for key in attrs:
        if key.endswith(_NAMESPACED_TOOL_NAME) and isinstance(attrs[key], str) and attrs[key]:
            return key
    return None


def _own_key(attrs: dict[str, Any], span_name: str, suffix: str) -> str | None:
    """An attribute named after its span, with or without the span's method, plus
    ``suffix`` (``haystack.agent.step.tool`` -> ``haystack.agent.step.tool.input``,
    ``haystack.agent.run`` -> ``haystack.agent.input``): the span's own content."""
    for stem in (span_name, _bare_name(span_name)):
        key = stem + suffix
        if key in attrs:
            return key
    return None


def _flagged_error(attrs: dict[str, Any], output_key: str | None) -> ErrorInfo | None:
    """A tool span that ended without ERROR but flags its call failed with a boolean
    ``<ns>.tool.error`` beside ``<ns>.tool.name``: the error, its message the span's own
    output (what the tool call answered)."""
    key = _namespaced_tool_key(attrs)
    if key is None or attrs.get(key[: -len("name")] + "error") is not True:
        return None
    out = attrs.get(output_key) if output_key is not None else None
    return ErrorInfo(type=str(attrs.get(C.ERROR_TYPE) or "Error"), message=str(out or "")[:2000])


# The attribute marking a step whose model and tokens were read from its reply (its output)
REPLY_USAGE = "flightlog.usage_from_output"
_USAGE_PAIRS = (("prompt_tokens", "completion_tokens"), ("input_tokens", "output_tokens"))


def _usage_of(doc: Any) -> tuple[str, int, int] | None:
    """``(model, input tokens, output tokens)`` of a mapping that names its model (text) and
    its usage as a mapping of whole token counts, in ``doc`` or in its ``meta``."""
    if not isinstance(doc, dict):
        return None
    meta = doc.get("meta")
    holder = meta if isinstance(meta, dict) and "usage" in meta else doc
    model, usage = holder.get("model"), holder.get("usage")
    if not isinstance(model, str) or not model or not isinstance(usage, dict):
        return None
    for ink, outk in _USAGE_PAIRS:
        i, o = usage.get(ink), usage.get(outk)
        if type(i) is int and type(o) is int and i >= 0 and o >= 0:
            return model, i, o
    return None


def _assistant_reply(doc: Any) -> tuple[str, int, int] | None:
    if isinstance(doc, dict) and doc.get("role") == "assistant":
        return _usage_of(doc)
    return None


def reply_usage(raw: Any) -> tuple[str, int, int] | None:
    """The model and ``(input, output)`` tokens a span's output reports when that output is a
    chat model's reply: an assistant message whose ``meta`` (or itself) names ``model`` and
    ``usage`` (``prompt_tokens``/``completion_tokens`` or ``input_tokens``/``output_tokens``,
    whole numbers); a non-empty list of such messages, or a mapping whose one field holds
    one (a generator's ``{"replies": [...]}``; the call's usage, the first reply's); or an
    OpenAI chat completion (``model``, ``usage`` and a ``choices`` list). Anything else is
    not a reply: a conversation (other roles among the messages), a text that mentions
    usage, counts that are not whole numbers."""
    if isinstance(raw, str):
        if '"usage"' not in raw or '"model"' not in raw:  # (most outputs: no parse)
            return None
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
    if isinstance(raw, dict):
        if isinstance(raw.get("choices"), list) and "role" not in raw:
            return _usage_of(raw)
        if len(raw) == 1:
            raw = next(iter(raw.values()))
    if isinstance(raw, list):
        if not raw or not all(isinstance(m, dict) and m.get("role") == "assistant" for m in raw):
            return None
        return _assistant_reply(raw[0])
    return _assistant_reply(raw)


def _drop_wrapping_replies(steps: list[Step]) -> None:
    """A step typed a model call by its reply (``REPLY_USAGE``) that holds another model
    call of the request (a component span around an instrumented client call) only wraps
    it: back to a plain step, without model or tokens, so the call is counted once."""
    by_id = {st.id: st for st in steps}
    wrappers: set[str] = set()
    for st in steps:
        if st.kind != "llm":
            continue
        seen = {st.id}
        parent = by_id.get(st.parent_id) if st.parent_id else None
        while parent is not None and parent.id not in seen:
            seen.add(parent.id)
            if parent.attributes.get(REPLY_USAGE):
                wrappers.add(parent.id)
            parent = by_id.get(parent.parent_id) if parent.parent_id else None
    for sid in wrappers:
        st = by_id[sid]
        st.kind, st.model, st.input_tokens, st.output_tokens = "function", None, None, None
        del st.attributes[REPLY_USAGE]


_AGENT_NAME_KEYS = (C.GEN_AI_AGENT_NAME, C.OI_AGENT_NAME)


def step_name(attrs: dict[str, Any], kind: str, span_name: str) -> str:
    """A tool's name for tools; the entity name Traceloop gives; else the span name, for a
    tool without operation prefix or method suffix (a tool span that names its tool only in
    its span name, ``lookup_policy.__call__`` or ``execute_tool lookup_policy``, is the step
    ``lookup_policy``)."""
    if kind == "tool":
        tool = _first_of(attrs, _TOOL_NAME_KEYS)
        if tool is not None:
            return str(tool)
        key = _namespaced_tool_key(attrs)
        if key is not None:
            return str(attrs[key])
    entity = attrs.get(C.TL_ENTITY_NAME)
    if entity:
        return str(entity)
    return _bare_name(span_name) if kind == "tool" else span_name


def agent_name(attrs: dict[str, Any], kind: str, span_name: str) -> str | None:
    """The agent a span names: ``gen_ai.agent.name``, ``agent.name``; for an agent span,
    also ``graph.node.id``, LangGraph's node, Traceloop's entity, a pipeline component of an
    agent type (``<ns>.component.name``), ``gen_ai.agent.id``,
    else its span name without operation prefix or method suffix."""
    agent = _first_of(attrs, _AGENT_NAME_KEYS)
    if agent is not None or kind != "agent":
        return None if agent is None else str(agent)
    node = (
        _first(attrs, C.OI_GRAPH_NODE_ID, C.TL_ENTITY_NAME)
        or _langgraph_node(attrs)
        or _component_agent(attrs)
    )
    if node is None:
        node = _first(attrs, C.GEN_AI_AGENT_ID)
    return str(node) if node is not None else _bare_name(span_name)


def _first(attrs: dict[str, Any], *keys: str) -> Any:
    return _first_of(attrs, keys)


def _first_of(attrs: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for k in keys:
        v = attrs.get(k)
        if v is not None and v != "":
            return v
    return None


def _payload_value(attrs: dict[str, Any], value_key: str, mime_key: str | None) -> Any:
    raw = attrs.get(value_key)
    if isinstance(raw, str):
        mime = attrs.get(mime_key) if mime_key else None
        return _values.parse_maybe_json(raw, mime if isinstance(mime, str) else None)
    return raw


_INDEX_SEGMENT = re.compile(r"\.(\d+)\.")


_NOT_INDEXED: set[str] = set()  # keys known to hold no index segment (they repeat)


def unflatten(attrs: dict[str, Any], skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Fold OpenInference's indexed keys (``llm.input_messages.0.message.role``) into lists.

    ``{"a.0.x": 1, "a.1.x": 2}`` becomes ``{"a": [{"x": 1}, {"x": 2}]}``; other keys stay.
    Keys in ``skip`` are left out (as if removed from ``attrs`` first).
    """
    plain = _NOT_INDEXED
    if plain.issuperset(attrs):
        # (the usual span: every key known to hold no index segment; set operations in C,
        # and the copy keeps the order the loop below gives)
        out = dict(attrs)
        if skip:
            for key in skip.intersection(attrs):
                del out[key]
        return out
    out = {}
    groups: dict[str, dict[int, dict[str, Any]]] | None = None  # made at the first indexed key
    search = _INDEX_SEGMENT.search
    for key, value in attrs.items():
        if key in plain:
            if key not in skip:
                out[key] = value
            continue
        m = search(key)
        if m is None and len(key) <= 200:
            if len(plain) >= 8192:
                plain.clear()
            plain.add(key)
        if key in skip:
            continue
        if m is not None and m.start() > 0 and int(m.group(1)) < 10_000:
            if groups is None:
                groups = defaultdict(lambda: defaultdict(dict))
            groups[key[: m.start()]][int(m.group(1))][key[m.end() :]] = value
        else:
            out[key] = value
    if not groups:
        return out
    for prefix, items in groups.items():
        if prefix in out:  # a plain key of the same name: keep both, flattened
            for i, d in items.items():
                for rest, v in d.items():
                    out[f"{prefix}.{i}.{rest}"] = v
            continue
        out[prefix] = [unflatten(items[i]) if i in items else {} for i in range(max(items) + 1)]
    return out


def _store_payload(value: Any, payloads: dict[str, Payload]) -> str | None:
    """``flightlog.payload.payload_of(value, PAYLOAD_CAP)``, stored by hash; inline for the
    common case (under the cap, not a truncation marker already)."""
    if value is None:
        return None
    return _store_encoded(encode_value(value), payloads)


def _store_encoded(data: bytes, payloads: dict[str, Payload]) -> str:
    """``_store_payload`` of a value encoded already."""
    if len(data) <= PAYLOAD_CAP and not data.startswith(b'{"$truncated"'):
        # orjson's bytes keep its whole output buffer (4 KB at least): a compact copy is
        # what the batch holds until it is written (no page per payload in the queue)
        data = bytes(memoryview(data))
        h = hashlib.sha256(data).hexdigest()
        if h not in payloads:
            payloads[h] = _new_payload(h, data)
        return h
    p = make_payload(data, PAYLOAD_CAP)
    payloads.setdefault(p.hash, p)
    return p.hash


_object_new = object.__new__
_SLOTS = vars(Payload)  # (the slots' member descriptors)
_SET_PAYLOAD = (_SLOTS["hash"].__set__, _SLOTS["data"].__set__, _SLOTS["size"].__set__)
_SET_TRUNCATED = _SLOTS["truncated"].__set__


def _new_payload(h: str, data: bytes) -> Payload:
    """``Payload(h, data, len(data), False)`` without the frozen dataclass's ``__init__``
    (one ``object.__setattr__`` call per field: twice the cost); its slots set directly."""
    p = _object_new(Payload)
    set_hash, set_data, set_size = _SET_PAYLOAD
    set_hash(p, h)
    set_data(p, data)
    set_size(p, len(data))
    _SET_TRUNCATED(p, False)
    return p


def _attr_payload(
    attrs: dict[str, Any],
    key: str,
    mime_key: str | None,
    payloads: dict[str, Payload],
    texts: dict[tuple[str, bool], str | None],
) -> str | None:
    """``_store_payload(_payload_value(attrs, key, mime_key), payloads)``, once per distinct
    text in a request (``texts``: (text, declared JSON) -> hash): a text is parsed,
    re-encoded canonically and hashed once, however many spans carry it (a chain's input is
    its first LLM call's, a tool's result is the next call's message)."""
    raw = attrs.get(key)
    if type(raw) is not str:
        return _store_payload(_payload_value(attrs, key, mime_key), payloads)
    mime = attrs.get(mime_key) if mime_key else None
    declared = isinstance(mime, str) and "json" in mime
    seen = (raw, declared)
    h = texts.get(seen, "")  # ("": not seen yet; a hash is never empty, None is a value)
    if h != "":
        return h
    # _values.parse_maybe_json(raw, mime), then _store_payload, inline: the value of a JSON
    # text (a text that does not parse is the text itself), encoded canonically
    stripped = raw.lstrip()
    value: Any = raw
    if declared or (stripped and stripped[0] in '{["'):
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:  # also raised for nesting deeper than orjson allows
            value = raw
    h = texts[seen] = None if value is None else _store_encoded(encode_value(value), payloads)
    return h


def _first_key(attrs: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for k in keys:
        if k in attrs:
            return k
    return None


_INPUT_KEYS_AFTER_FIRST = C.INPUT_KEYS[1:]
_OUTPUT_KEYS_AFTER_FIRST = C.OUTPUT_KEYS[1:]
# First present and not empty wins (``_first``), in this order:
_INPUT_TOKEN_KEYS = (
    C.GEN_AI_USAGE_INPUT_TOKENS,
    C.OI_TOKENS_PROMPT,
    C.GEN_AI_USAGE_PROMPT_TOKENS,
    *C.AI_USAGE_INPUT,
)
_OUTPUT_TOKEN_KEYS = (
    C.GEN_AI_USAGE_OUTPUT_TOKENS,
    C.OI_TOKENS_COMPLETION,
    C.GEN_AI_USAGE_COMPLETION_TOKENS,
    *C.AI_USAGE_OUTPUT,
)
_MODEL_KEYS = (
    C.GEN_AI_RESPONSE_MODEL,
    C.GEN_AI_REQUEST_MODEL,
    C.OI_LLM_MODEL_NAME,
    C.AI_MODEL_ID,
    C.LF_MODEL,
)
_PROVIDER_KEYS = (
    C.GEN_AI_PROVIDER_NAME,
    C.GEN_AI_SYSTEM,
    C.OI_LLM_PROVIDER,
    C.OI_LLM_SYSTEM,
    C.AI_MODEL_PROVIDER,
)


def _foreign_step(
    s: _Span, payloads: dict[str, Payload], texts: dict[tuple[str, bool], str | None]
) -> Step:
    a = s.attrs
    kind = step_kind(a, s.name)
    name = step_name(a, kind, s.name)
    agent = agent_name(a, kind, s.name)
    # Input, then output, stored in that order (the batch's payloads keep it)
    if C.OI_INPUT_VALUE in a:
        input_hash = _attr_payload(a, C.OI_INPUT_VALUE, C.OI_INPUT_MIME, payloads, texts)
    else:
        key = _first_key(a, _INPUT_KEYS_AFTER_FIRST)
        input_hash = None if key is None else _attr_payload(a, key, None, payloads, texts)
        if input_hash is None:  # none of the keys, or a value that is null
            in_value = _indexed_messages(a, C.GEN_AI_PROMPT)
            if in_value is None:
                in_value = _event_content(s, "input")
            input_hash = _store_payload(in_value, payloads)
            if input_hash is None and (key := _own_key(a, s.name, ".input")) is not None:
                input_hash = _attr_payload(a, key, None, payloads, texts)
    out_key: str | None = C.OI_OUTPUT_VALUE
    if C.OI_OUTPUT_VALUE in a:
        output_hash = _attr_payload(a, C.OI_OUTPUT_VALUE, C.OI_OUTPUT_MIME, payloads, texts)
    else:
        key = out_key = _first_key(a, _OUTPUT_KEYS_AFTER_FIRST)
        output_hash = None if key is None else _attr_payload(a, key, None, payloads, texts)
        if output_hash is None:
            out_value = _indexed_messages(a, C.GEN_AI_COMPLETION)
            if out_value is None:
                out_value = _event_content(s, "output")
            output_hash = _store_payload(out_value, payloads)
            out_key = None
            if output_hash is None and (key := _own_key(a, s.name, ".output")) is not None:
                output_hash = _attr_payload(a, key, None, payloads, texts)
                out_key = key
    # A span no convention types whose output is a chat model's reply carrying its model and
    # usage (a generator's {"replies": [assistant message with meta {model, usage}]}, an
    # OpenAI chat completion): the model call it reports
    reply = None
    if kind == "function" and out_key is not None:
        reply = reply_usage(a.get(out_key))
        if reply is not None:
            kind = "llm"
    status = s.raw.status
    status_code = status.code
    error = _error_info(s) if status_code == STATUS_ERROR else None
    if error is None and kind == "tool" and _first_of(a, _TOOL_NAME_KEYS) is None:
        error = _flagged_error(a, _own_key(a, s.name, ".output"))
    attributes = unflatten(a, C.PAYLOAD_KEYS)
    if s.kind:
        attributes["otel.span_kind"] = SPAN_KIND_NAMES.get(s.kind, str(s.kind))
    if s.scope:
        attributes["otel.scope.name"] = s.scope
    if status_code != STATUS_ERROR and status.message:
        attributes["otel.status_message"] = status.message
    # Usage on an agent, chain or workflow span is the roll-up of the LLM calls inside it
    # (OpenInference and GenAI agent spans, the Vercel AI SDK's ai.generateText): kept as an
    # attribute, counted only on the LLM steps, so a run's tokens are not counted twice.
    input_tokens = output_tokens = cost = None
    model = _first_of(a, _MODEL_KEYS)
    if reply is not None:
        model, input_tokens, output_tokens = reply
        attributes[REPLY_USAGE] = True
    elif kind == "llm":
        input_tokens = _first_of(a, _INPUT_TOKEN_KEYS)
        output_tokens = _first_of(a, _OUTPUT_TOKEN_KEYS)
        cost = _first(a, C.OI_COST_TOTAL)
        if input_tokens is None and output_tokens is None and C.LF_USAGE_DETAILS in a:
            input_tokens, output_tokens = _usage_details(a[C.LF_USAGE_DETAILS])
    # (positional, in Step's field order, pinned by _STEP_FIELDS: a third of the keyword
    # call's cost)
    return Step(
        s.trace,  # run_id
        s.id,  # id
        name,  # name
        kind,  # kind
        0,  # index
        s.start,  # started_ns
        s.parent,  # parent_id
        None if agent is None else str(agent),  # agent
        None,  # owner
        "ok" if error is None else "error",  # status
        s.end or None,  # ended_ns
        input_hash,  # input_hash
        output_hash,  # output_hash
        error,  # error
        _str_or_none(model),  # model
        _str_or_none(_first_of(a, _PROVIDER_KEYS)),  # provider
        _int_or_none(input_tokens),  # input_tokens
        _int_or_none(output_tokens),  # output_tokens
        _float_or_none(cost),  # cost
        attributes,  # attributes
    )


# The field order the positional Step(...), Run(...) and Payload(...) calls rely on.
_STEP_FIELDS = (
    "run_id", "id", "name", "kind", "index", "started_ns", "parent_id", "agent", "owner",
    "status", "ended_ns", "input_hash", "output_hash", "error", "model", "provider",
    "input_tokens", "output_tokens", "cost", "attributes",
)  # fmt: skip
_RUN_FIELDS = (
    "id", "workflow", "started_ns", "status", "ended_ns", "version", "owner", "service",
    "input_hash", "output_hash", "reason", "failed_step_id", "error", "declared_steps",
    "source", "attributes", "project",
)  # fmt: skip
if (
    tuple(f.name for f in fields(Step)) != _STEP_FIELDS
    or tuple(f.name for f in fields(Run)) != _RUN_FIELDS
    or tuple(f.name for f in fields(Payload)) != ("hash", "data", "size", "truncated")
):  # pragma: no cover - a changed model
    raise ImportError("flightlog.model.Step, Run or Payload changed: update otel/decode.py")


def _usage_details(raw: Any) -> tuple[Any, Any]:
    """Input and output tokens from a usage record given as a JSON object (or its text):
    Langfuse's ``usage_details`` (``input``/``output``, or the provider's own
    ``prompt_tokens``/``completion_tokens`` passed on as they came)."""
    doc = raw
    if isinstance(raw, str):
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None, None
    if not isinstance(doc, dict):
        return None, None
    return _first_of(doc, C.LF_USAGE_INPUT), _first_of(doc, C.LF_USAGE_OUTPUT)


def _indexed_messages(attrs: dict[str, Any], prefix: str) -> Any:
    """OpenLLMetry's indexed messages (``gen_ai.prompt.0.role``, ``gen_ai.prompt.0.content``)
    as a list of ``{"role", "content", ...}``; None when there are none."""
    lead = prefix + "."
    found: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        if not key.startswith(lead):
            continue
        head, _, rest = key[len(lead) :].partition(".")
        if head.isdigit() and rest and int(head) < 10_000:
            found.setdefault(int(head), {})[rest] = value
    if not found:
        return None
    out = []
    for i in sorted(found):
        msg = found[i]
        if isinstance(msg.get("content"), str):
            msg["content"] = _values.parse_maybe_json(msg["content"])
        out.append(msg)
    return out


def _event_content(s: _Span, which: str) -> Any:
    """Content the GenAI conventions carry in span events: the
    ``gen_ai.client.inference.operation.details`` event's ``gen_ai.input/output.messages``,
    else the per-message events (``gen_ai.user.message``, ``gen_ai.choice``, ...) in order."""
    key = C.GEN_AI_INPUT_MESSAGES if which == "input" else C.GEN_AI_OUTPUT_MESSAGES
    names = C.GEN_AI_INPUT_EVENTS if which == "input" else C.GEN_AI_OUTPUT_EVENTS
    messages: list[Any] = []
    for ev in s.raw.events:
        if ev.name == C.GEN_AI_DETAILS_EVENT:
            ea = attributes_to_dict(ev.attributes)
            if key in ea:
                return _payload_value(ea, key, None)
        elif ev.name in names:
            ea = attributes_to_dict(ev.attributes)
            body = {k: _payload_value(ea, k, None) for k in ea}
            messages.append({"event": ev.name, **body})
    return messages or None


def _str_or_none(v: Any) -> str | None:
    return None if v is None else str(v)


def _int_or_none(v: Any) -> int | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _float_or_none(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _error_info(s: _Span) -> ErrorInfo:
    """From the span's ``exception`` event (OTel exception conventions), else ``error.type``."""
    for ev in s.raw.events:
        if ev.name == "exception":
            ea = attributes_to_dict(ev.attributes)
            return ErrorInfo(
                type=str(ea.get("exception.type") or s.attrs.get(C.ERROR_TYPE) or "Error"),
                message=str(ea.get("exception.message") or s.raw.status.message or ""),
                traceback=_str_or_none(ea.get("exception.stacktrace")),
            )
    return ErrorInfo(
        type=str(s.attrs.get(C.ERROR_TYPE) or "Error"),
        message=s.raw.status.message or "",
    )


# A UUID in its canonical text form (RFC 9562 section 4), with the one separator that joins
# it to the rest of a name: an instance's id, new in every run.
_INSTANCE_ID = re.compile(
    r"[_\-.:/ #]?(?<![0-9A-Za-z])"
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![0-9A-Za-z])"
)


def workflow_name(attrs: dict[str, Any], root: Step) -> str:
    """A run's workflow, from the framework's own fields: ``flightlog.run.workflow``,
    Traceloop's ``traceloop.workflow.name``, the Vercel AI SDK's
    ``ai.telemetry.functionId``, Langfuse's ``langfuse.trace.name``, else the root span's
    name without a GenAI operation prefix or method suffix (``invoke_agent claims`` and
    ``claims.run`` name ``claims``), and
    without an instance's UUID: a span named after the object that ran (``Crew_<uuid>.kickoff``,
    a new id every run) names the same workflow every run (``Crew.kickoff``), so its runs
    share a history. A name that is only a UUID is kept."""
    named = _first(attrs, C.FL_RUN_WORKFLOW, C.TL_WORKFLOW_NAME, C.AI_FUNCTION_ID, C.LF_TRACE_NAME)
    if named is not None:
        return str(named)
    name = _bare_name(root.name)
    if "-" in name:  # (a UUID has four; most names have none)
        general = _INSTANCE_ID.sub("", name)
        if general.strip("_-.:/ #"):
            return general
    return name


def _foreign_run(root: _Span, root_step: Step, steps: list[Step]) -> Run:
    attributes: dict[str, Any] = dict(root.resource)
    for key in (C.OI_SESSION_ID, C.OI_USER_ID, C.GEN_AI_CONVERSATION_ID):
        if key in root.attrs:
            attributes[key] = root.attrs[key]
    version = root.resource.get("service.version")
    run = Run(  # (positional, in Run's field order, pinned below _STEP_FIELDS)
        root.trace,  # id
        workflow_name(root.attrs, root_step),  # workflow
        root.start,  # started_ns
        "succeeded",  # status
        root.end or None,  # ended_ns
        None if version is None else str(version),  # version
        None,  # owner
        root.service,  # service
        root_step.input_hash,  # input_hash
        root_step.output_hash,  # output_hash
        None,  # reason
        None,  # failed_step_id
        None,  # error
        None,  # declared_steps
        "otlp",  # source
        attributes,  # attributes
    )
    apply_derived_status(run, steps)
    return run


# -- events and links ---------------------------------------------------------------------


def _events_and_links(
    s: _Span, result: DecodeResult, payloads: dict[str, Payload], *, is_step: bool
) -> None:
    events, links = s.raw.events, s.links
    if not events and not links:
        return  # (most spans)
    batch = result.batch
    kept_events: list[dict[str, Any]] = []
    for n, ev in enumerate(events):
        if ev.name == C.FL_PAYLOAD_EVENT:
            raw = {kv.key: kv.value for kv in ev.attributes}
            data_v = raw.get(C.FL_PAYLOAD_DATA)
            if data_v is None:
                continue
            data = (
                data_v.bytes_value
                if data_v.WhichOneof("value") == "bytes_value"
                else data_v.string_value.encode()
            )
            ea = attributes_to_dict(ev.attributes)
            h = str(ea.get(C.FL_PAYLOAD_HASH) or hashlib.sha256(data).hexdigest())
            payloads.setdefault(
                h,
                Payload(
                    hash=h,
                    data=data,
                    size=_opt_int(ea, C.FL_PAYLOAD_SIZE) or len(data),
                    truncated=bool(ea.get(C.FL_PAYLOAD_TRUNCATED)),
                ),
            )
            continue
        ea = attributes_to_dict(ev.attributes)
        if ev.name == C.FL_EDGE_EVENT:
            batch.edges.append(
                Edge(
                    run_id=s.trace,
                    source=str(ea.get(C.FL_EDGE_SOURCE)),
                    target=str(ea.get(C.FL_EDGE_TARGET)),
                    kind=str(ea.get(C.FL_EDGE_KIND) or "data"),
                    evidence=str(ea.get(C.FL_EDGE_EVIDENCE) or "declared"),
                    detail=_opt_str(ea, C.FL_EDGE_DETAIL),
                )
            )
        elif ev.name == C.GEN_AI_EVALUATION_EVENT:
            batch.findings.append(_finding(s, ev, ea, n, is_step))
        elif ev.name == "exception" and int(s.raw.status.code) == STATUS_ERROR:
            continue  # mapped onto the step's error (on an OK span: handled, kept below)
        elif is_step and len(kept_events) < MAX_KEPT_EVENTS:
            kept_events.append(
                {"name": ev.name, "time_ns": int(ev.time_unix_nano), "attributes": ea}
            )
    if kept_events and is_step:
        step = batch.steps[-1]
        step.attributes["otel.events"] = kept_events
    cross: list[dict[str, Any]] = []
    for link in links:
        la = attributes_to_dict(link.attributes)
        if len(link.span_id) != 8:
            continue
        src_trace = link.trace_id.hex()
        if src_trace == s.trace:
            batch.edges.append(
                Edge(
                    run_id=s.trace,
                    source=link.span_id.hex(),
                    target=s.id,
                    kind=str(la.get(C.FL_EDGE_KIND) or "data"),
                    evidence=str(la.get(C.FL_EDGE_EVIDENCE) or "link"),
                    detail=_opt_str(la, C.FL_EDGE_DETAIL)
                    if C.FL_EDGE_KIND in la
                    else _str_or_none(la.get("link.type") or la.get("type")),
                )
            )
        else:
            cross.append({"trace_id": src_trace, "span_id": link.span_id.hex(), "attributes": la})
    if cross and is_step:
        batch.steps[-1].attributes["otel.links"] = cross


_FAIL_LABELS = {
    "fail",
    "failed",
    "failure",
    "incorrect",
    "false",
    "bad",
    "error",
    "wrong",
    "not_relevant",
    "irrelevant",
    "hallucinated",
    "toxic",
    "unsafe",
}


def _finding(s: _Span, ev: Any, ea: dict[str, Any], n: int, is_step: bool) -> Finding:
    if C.FL_FINDING_ID in ea:  # one of ours: exact
        return Finding(
            id=str(ea[C.FL_FINDING_ID]),
            run_id=s.trace,
            detector=str(ea.get(C.GEN_AI_EVALUATION_NAME) or ""),
            severity=str(ea.get(C.FL_FINDING_SEVERITY) or "info"),
            message=str(ea.get(C.GEN_AI_EVALUATION_EXPLANATION) or ""),
            step_id=_opt_str(ea, C.FL_FINDING_STEP),
            evidence=_json_attr(ea, C.FL_FINDING_EVIDENCE) or {},
            created_ns=int(ev.time_unix_nano),
            kind=_opt_str(ea, C.FL_FINDING_KIND),
        )
    name = str(ea.get(C.GEN_AI_EVALUATION_NAME) or "evaluation")
    label = ea.get(C.GEN_AI_EVALUATION_SCORE_LABEL)
    score = ea.get(C.GEN_AI_EVALUATION_SCORE_VALUE)
    explanation = ea.get(C.GEN_AI_EVALUATION_EXPLANATION)
    error_type = ea.get(C.ERROR_TYPE)
    if error_type is not None:
        severity = "warning"  # the evaluation itself failed
    elif isinstance(label, str) and label.strip().lower() in _FAIL_LABELS:
        severity = "error"
    else:
        severity = "info"
    parts = [f"{name}:"]
    if label is not None:
        parts.append(f"label={label}")
    if score is not None:
        parts.append(f"score={score}")
    if explanation:
        parts.append(f"- {explanation}")
    if error_type is not None:
        parts.append(f"(evaluation error {error_type})")
    fid = hashlib.sha256(
        f"{s.trace}/{s.id}/{n}/{name}/{int(ev.time_unix_nano)}".encode()
    ).hexdigest()[:32]
    return Finding(
        id=fid,
        run_id=s.trace,
        detector=name,
        severity=severity,
        message=" ".join(parts),
        step_id=s.id if is_step else None,
        evidence={k: v for k, v in ea.items()},
        created_ns=int(ev.time_unix_nano),
    )


def decode(body: bytes, content_type: str, *, infer_edges: bool = True) -> DecodeResult:
    """``parse_request`` then ``request_to_batch``."""
    return request_to_batch(parse_request(body, content_type), infer_edges=infer_edges)


__all__ = ["DecodeResult", "decode", "parse_request", "request_to_batch", "step_kind", "unflatten"]
