"""Flightlog records -> OTLP -> Flightlog records is lossless (protobuf and OTLP/JSON)."""

from __future__ import annotations

import hashlib

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flightlog.model import Batch, Edge, ErrorInfo, Finding, Payload, Run, Step
from flightlog.otel import conventions as C
from flightlog.otel.decode import decode
from flightlog.otel.encode import encode, encode_bytes

hex32 = st.binary(min_size=16, max_size=16).filter(any).map(bytes.hex)
hex16 = st.binary(min_size=8, max_size=8).filter(any).map(bytes.hex)
ns = st.integers(min_value=0, max_value=2**63 - 1)
text = st.text(max_size=20)
opt_text = st.none() | text
json_scalar = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | text
    | st.floats(allow_nan=False, allow_infinity=False)
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
attrs = st.dictionaries(text, json_value, max_size=4)
errors = st.none() | st.builds(
    ErrorInfo, type=text, message=text, traceback=opt_text, origin_step_id=st.none() | hex16
)


def payload_of(value: object) -> Payload:
    data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return Payload(hash=hashlib.sha256(data).hexdigest(), data=data, size=len(data))


@st.composite
def batches(draw: st.DrawFn) -> Batch:
    run_ids = draw(st.lists(hex32, min_size=1, max_size=2, unique=True))
    payloads = [payload_of(v) for v in draw(st.lists(json_value, max_size=3))]
    payloads = list({p.hash: p for p in payloads}.values())
    if draw(st.booleans()):
        payloads.append(
            Payload(hash="f" * 64, data=b'{"$truncated":true}', size=10**7, truncated=True)
        )
    hashes = st.none() | st.sampled_from([p.hash for p in payloads]) if payloads else st.none()
    runs = []
    for rid in run_ids:
        if draw(st.booleans()):
            runs.append(
                Run(
                    id=rid,
                    workflow=draw(text),
                    started_ns=draw(ns),
                    status=draw(st.sampled_from(["running", "succeeded", "failed", "unknown"])),
                    ended_ns=draw(st.none() | ns),
                    version=draw(opt_text),
                    owner=draw(opt_text),
                    service=draw(opt_text),
                    input_hash=draw(hashes),
                    output_hash=draw(hashes),
                    reason=draw(opt_text),
                    failed_step_id=draw(st.none() | hex16),
                    error=draw(errors),
                    declared_steps=draw(st.none() | st.integers(0, 10**6)),
                    source=draw(st.sampled_from(["sdk", "otlp", "import"])),
                    attributes=draw(attrs),
                )
            )
    steps = []
    step_ids = draw(st.lists(hex16, max_size=4, unique=True))
    for i, sid in enumerate(step_ids):
        rid = draw(st.sampled_from(run_ids))
        steps.append(
            Step(
                run_id=rid,
                id=sid,
                name=draw(text),
                kind=draw(st.sampled_from(["agent", "llm", "tool", "function"])),
                index=i + 1,
                started_ns=draw(ns),
                parent_id=draw(st.none() | st.sampled_from(step_ids)),
                agent=draw(opt_text),
                owner=draw(opt_text),
                status=draw(st.sampled_from(["ok", "error", "running"])),
                ended_ns=draw(st.none() | ns),
                input_hash=draw(hashes),
                output_hash=draw(hashes),
                error=draw(errors),
                model=draw(opt_text),
                provider=draw(opt_text),
                input_tokens=draw(st.none() | st.integers(0, 10**9)),
                output_tokens=draw(st.none() | st.integers(0, 10**9)),
                cost=draw(st.none() | st.floats(0, 1e6)),
                attributes=draw(attrs),
            )
        )
    all_ids = step_ids or ["1" * 16]
    edges = list(
        {
            (e.run_id, e.source, e.target, e.kind): e
            for e in draw(
                st.lists(
                    st.builds(
                        Edge,
                        run_id=st.sampled_from(run_ids),
                        source=st.sampled_from(all_ids),
                        target=st.sampled_from(all_ids),
                        kind=st.sampled_from(["data", "handoff"]),
                        evidence=st.sampled_from(["identity", "content", "declared"]),
                        detail=opt_text,
                    ),
                    max_size=3,
                )
            )
        }.values()
    )
    findings = draw(
        st.lists(
            st.builds(
                Finding,
                id=hex32,
                run_id=st.sampled_from(run_ids),
                detector=text,
                severity=st.sampled_from(["info", "warning", "error", "critical"]),
                message=text,
                step_id=st.none() | st.sampled_from(all_ids),
                evidence=attrs,
                created_ns=ns,
            ),
            max_size=2,
            unique_by=lambda f: f.id,
        )
    )
    return Batch(runs=runs, steps=steps, edges=edges, payloads=payloads, findings=findings)


def _norm(b: Batch) -> dict[str, object]:
    return {
        "runs": sorted((r.to_dict() for r in b.runs), key=lambda d: d["id"]),
        "steps": sorted((s.to_dict() for s in b.steps), key=lambda d: d["id"]),
        "edges": sorted((e.to_dict() for e in b.edges), key=orjson.dumps),
        "payloads": sorted((p.hash, p.data, p.size, p.truncated) for p in b.payloads),
        "findings": sorted((f.to_dict() for f in b.findings), key=lambda d: d["id"]),
    }


def _strip_placeholders(result) -> Batch:  # type: ignore[no-untyped-def]
    b = result.batch
    b.runs = [r for r in b.runs if r.id not in result.placeholder_runs]
    return b


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_protobuf_round_trip_is_lossless(batch: Batch) -> None:
    result = decode(encode_bytes(batch, service="svc"), "application/x-protobuf")
    assert result.rejected_spans == 0
    assert not result.inferred_runs  # our own spans are decoded exactly, nothing inferred
    assert _norm(_strip_placeholders(result)) == _norm(batch)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_otlp_json_round_trip_is_lossless(batch: Batch) -> None:
    from google.protobuf import json_format

    doc = json_format.MessageToDict(encode(batch))
    # OTLP/JSON carries ids as hex, not protobuf-JSON's base64.
    import base64

    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
                for link in span.get("links", []):
                    for key in ("traceId", "spanId"):
                        link[key] = base64.b64decode(link[key]).hex()
    result = decode(orjson.dumps(doc), "application/json")
    assert _norm(_strip_placeholders(result)) == _norm(batch)


def test_top_level_steps_are_children_of_the_run_span() -> None:
    run = Run(id="a" * 32, workflow="wf", started_ns=1, status="succeeded", ended_ns=5)
    step = Step(run_id=run.id, id="b" * 16, name="s", kind="tool", index=1, started_ns=2)
    req = encode(Batch(runs=[run], steps=[step]))
    spans = {s.name: s for s in req.resource_spans[0].scope_spans[0].spans}
    assert spans["s"].parent_span_id.hex() == C.run_span_id(run.id)
    assert spans["wf"].parent_span_id == b""
    result = decode(req.SerializeToString(), "application/x-protobuf")
    assert result.batch.steps[0].parent_id is None
    assert result.ended_runs == [run.id]
