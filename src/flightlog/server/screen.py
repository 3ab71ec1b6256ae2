"""Screening OTLP requests before they are queued for the store.

``decode_request`` decodes a request so that a bad span is rejected on its own (OTLP partial
success), never with its neighbours: timestamps beyond 2^63-1 ns, integers the store cannot
hold, and spans whose decoding raises are each dropped with a message.

``claim_runs`` stamps the runs of a request with the sending key's project and rejects
(OTLP partial success) the spans of traces that already belong to another project: an
ingest key of project B cannot add steps to, or change the status of, a run of project A
by re-using its trace id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flightlog.errors import InputError
from flightlog.otel.decode import MAX_ERRORS_REPORTED, DecodeResult
from flightlog.store import core

if TYPE_CHECKING:
    from flightlog.store.base import StoreReader


def _foreign(store: StoreReader, run_ids: list[str], project: str) -> set[str]:
    with store.read() as tx:
        projects = core.run_projects(tx, run_ids)
    return {rid for rid, owner in projects.items() if owner != project}


def claim_runs(store: StoreReader, result: DecodeResult, project: str) -> None:
    """Stamp ``result``'s runs with ``project``; reject the spans of other projects' runs."""
    batch = result.batch
    run_ids = sorted({r.id for r in batch.runs} | {s.run_id for s in batch.steps})
    taken = _foreign(store, run_ids, project) if run_ids else set()
    for run in batch.runs:
        run.project = project
    if not taken:
        return
    dropped = sum(1 for s in batch.steps if s.run_id in taken) + sum(
        1
        for r in batch.runs
        if r.id in taken and r.id not in result.placeholder_runs and r.source != "otlp"
    )
    dropped = min(dropped, result.accepted_spans)
    batch.runs = [r for r in batch.runs if r.id not in taken]
    batch.steps = [s for s in batch.steps if s.run_id not in taken]
    batch.edges = [e for e in batch.edges if e.run_id not in taken]
    batch.findings = [f for f in batch.findings if f.run_id not in taken]
    result.ended_runs = [r for r in result.ended_runs if r not in taken]
    result.placeholder_runs -= taken
    result.inferred_runs -= taken
    result.accepted_spans -= dropped
    result.rejected_spans += dropped
    for run_id in sorted(taken):
        if len(result.errors) < MAX_ERRORS_REPORTED:
            result.errors.append(
                f"trace {run_id}: belongs to another project; its spans were rejected"
            )


# -- decoding that rejects a bad span, never its neighbours ---------------------------------

INT64_MAX = 2**63 - 1


def _note(result: DecodeResult, message: str) -> None:
    result.rejected_spans += 1
    if len(result.errors) < MAX_ERRORS_REPORTED:
        result.errors.append(message)


def _spans(req: Any) -> list[tuple[Any, Any, Any, int]]:
    """(resource_spans, scope_spans, span, index in scope_spans) for every span."""
    return [
        (rs, ss, span, i)
        for rs in req.resource_spans
        for ss in rs.scope_spans
        for i, span in enumerate(ss.spans)
    ]


def _time_problem(span: Any) -> str | None:
    """OTLP timestamps are fixed64; the store keeps signed 64-bit nanoseconds (until 2262)."""
    if span.start_time_unix_nano <= INT64_MAX and span.end_time_unix_nano <= INT64_MAX:
        events = span.events
        if not events or all(ev.time_unix_nano <= INT64_MAX for ev in events):
            return None
    name = span.name[:80]
    for what, value in (("start", span.start_time_unix_nano), ("end", span.end_time_unix_nano)):
        if value > INT64_MAX:
            return (
                f"span {name!r}: {what}_time_unix_nano {value} is beyond 2^63-1 ns (year 2262); "
                "expected nanoseconds since the Unix epoch"
            )
    for ev in span.events:
        if ev.time_unix_nano > INT64_MAX:
            return (
                f"span {name!r}: event {ev.name[:80]!r} time_unix_nano {ev.time_unix_nano} "
                "is beyond 2^63-1 ns"
            )
    return None


def _single(rs: Any, ss: Any, span: Any) -> Any:
    """A request holding only ``span`` (with its resource and scope)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    req = ExportTraceServiceRequest()
    out_rs = req.resource_spans.add()
    out_rs.resource.CopyFrom(rs.resource)
    out_ss = out_rs.scope_spans.add()
    out_ss.scope.CopyFrom(ss.scope)
    out_ss.spans.add().CopyFrom(span)
    return req


def _remove(doomed: list[tuple[Any, Any, Any, int]]) -> None:
    for _, ss, _, i in sorted(doomed, key=lambda d: -d[3]):
        del ss.spans[i]


def _out_of_range(result: DecodeResult) -> set[tuple[str, str | None]]:
    """(trace, span id or None for the whole trace) of records holding an integer the store
    cannot keep (a signed 64-bit column)."""
    bad: set[tuple[str, str | None]] = set()
    lo, hi = -INT64_MAX - 1, INT64_MAX

    def wide(*values: int | None) -> bool:
        return any(v is not None and not lo <= v <= hi for v in values)

    for s in result.batch.steps:
        # (inline for steps, the many: the usual step holds only values in range)
        try:
            fits = (
                lo <= s.index <= hi
                and lo <= s.started_ns <= hi
                and (s.ended_ns is None or lo <= s.ended_ns <= hi)
                and (s.input_tokens is None or lo <= s.input_tokens <= hi)
                and (s.output_tokens is None or lo <= s.output_tokens <= hi)
            )
        except TypeError:
            fits = False
        if not fits and wide(s.index, s.started_ns, s.ended_ns, s.input_tokens, s.output_tokens):
            bad.add((s.run_id, s.id))
    for r in result.batch.runs:
        if wide(r.started_ns, r.ended_ns, r.declared_steps):
            bad.add((r.id, None))
    for f in result.batch.findings:
        if wide(f.created_ns):
            bad.add((f.run_id, f.step_id))
    return bad


def screen_times(req: Any) -> list[str]:
    """Remove the spans whose timestamps the store cannot hold; their rejection messages."""
    problems: list[tuple[tuple[Any, Any, Any, int], str]] = []
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            for i, span in enumerate(ss.spans):
                problem = _time_problem(span)
                if problem is not None:
                    problems.append(((rs, ss, span, i), problem))
    _remove([p[0] for p in problems])
    return [m for _, m in problems]


def split(req: Any, max_spans: int) -> list[Any]:
    """``req`` as requests of at most about ``max_spans`` spans each, a trace's spans kept
    together where the trace fits (so a huge request is decoded and stored piecewise, in
    bounded memory). A request that fits is returned as it is."""
    if sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans) <= max_spans:
        return [req]
    items = _spans(req)
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    by_trace: dict[bytes, list[tuple[Any, Any, Any, int]]] = {}
    for item in items:
        by_trace.setdefault(item[2].trace_id, []).append(item)
    out: list[Any] = []
    current: Any = None
    count = 0
    last: tuple[int, int] | None = None
    target: Any = None
    for group in by_trace.values():
        for rs, ss, span, _ in group:
            if current is None or count >= max_spans:
                current, count, last = ExportTraceServiceRequest(), 0, None
                out.append(current)
            if last != (id(rs), id(ss)):
                out_rs = current.resource_spans.add()
                out_rs.resource.CopyFrom(rs.resource)
                target = out_rs.scope_spans.add()
                target.scope.CopyFrom(ss.scope)
                last = (id(rs), id(ss))
            target.spans.add().CopyFrom(span)
            count += 1
    return out


def decode_parsed(req: Any) -> DecodeResult:
    """Decode a parsed request, rejecting (partial success) each span that cannot be decoded
    or stored instead of failing the whole request. Raises ``InputError`` only when the
    remaining spans still cannot be decoded together."""
    from flightlog.otel.decode import request_to_batch

    problems: list[str] = []
    try:
        result: DecodeResult | None = request_to_batch(req, infer_edges=False)
    except Exception:
        result = None
    if result is not None:
        bad = _out_of_range(result)
        if bad:
            traces = {t for t, s in bad if s is None}
            doomed = [
                item
                for item in _spans(req)
                if item[2].trace_id.hex() in traces
                or (item[2].trace_id.hex(), item[2].span_id.hex()) in bad
            ]
            problems += [_range_message(d[2]) for d in doomed]
            _remove(doomed)
            result = None
    if result is None:
        # Some span breaks decoding: find which by decoding each alone, drop those, and
        # decode the rest together (lineage within a trace needs its spans side by side).
        doomed = []
        for item in _spans(req):
            try:
                alone = request_to_batch(_single(*item[:3]), infer_edges=False)
            except Exception as exc:
                doomed.append(item)
                problems.append(
                    f"span {item[2].name[:80]!r}: cannot be decoded ({type(exc).__name__})"
                )
                continue
            if _out_of_range(alone):
                doomed.append(item)
                problems.append(_range_message(item[2]))
        _remove(doomed)
        try:
            result = request_to_batch(req, infer_edges=False)
        except Exception as exc:
            raise InputError(
                f"the spans of this request cannot be decoded together ({type(exc).__name__}); "
                "send them in separate requests"
            ) from exc
    for message in problems:
        _note(result, message)
    return result


def _range_message(span: Any) -> str:
    return f"span {span.name[:80]!r}: a value is beyond the signed 64-bit range"


def decode_request(body: bytes, content_type: str) -> DecodeResult:
    """``flightlog.otel.decode.decode`` for the server, with bad spans rejected one by one:
    timestamps beyond 2^63-1, values the store cannot hold, any span whose mapping raises.
    Raises ``InputError`` only for a body that is not an OTLP request at all."""
    from flightlog.otel.decode import parse_request

    req = parse_request(body, content_type)
    problems = screen_times(req)
    result = decode_parsed(req)
    for message in problems:
        _note(result, message)
    return result
