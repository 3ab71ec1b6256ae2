"""Hostile bodies against a real server: a bad value rejects its own span (OTLP partial
success), never its neighbours; nothing answers 500; 405 names the allowed methods."""

from __future__ import annotations

import json
import threading

import httpx
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flightlog.app import open_store
from tests.security.otlp import NS, request, span, trace_id

JS = {"Content-Type": "application/json"}
HUGE = 2**63  # one past the largest signed 64-bit nanosecond count


def _post(url: str, body: bytes) -> httpx.Response:
    return httpx.post(url + "/v1/traces", content=body, headers=JS, timeout=60)


def _stored(srv, trace: str) -> list[str]:  # type: ignore[no-untyped-def]
    store = open_store(srv.store_url, readonly=True)
    try:
        return [s.name for s in store.get_steps(trace)]
    finally:
        store.close()


def test_timestamps_beyond_2_63_reject_only_their_span(server) -> None:  # type: ignore[no-untyped-def]
    good, bad = trace_id(), trace_id()
    for start, end in ((HUGE, HUGE + 1), (NS, 2**64 - 1), (HUGE, NS)):
        r = _post(
            server.url,
            request(
                span(good, "1212121212121212", name="honest"),
                span(bad, name="hostile", start=start, end=end),
            ),
        )
        assert r.status_code == 200, r.text
        partial = r.json()["partialSuccess"]
        assert partial["rejectedSpans"] == "1" and "2^63" in partial["errorMessage"]
    assert _stored(server, good) == ["honest"]
    assert _stored(server, bad) == []
    assert httpx.get(server.url + "/readyz").status_code == 200


def test_huge_timestamps_never_fail_honest_clients(server) -> None:  # type: ignore[no-untyped-def]
    """The issue's attack: a client sending 2^63 timestamps while honest clients ingest.
    Before: a retryable 503 for every request committed with it (35% of honest requests)."""
    failures: list[int] = []
    honest_traces: list[str] = []

    def honest() -> None:
        for _ in range(15):
            t = trace_id()
            honest_traces.append(t)
            r = _post(server.url, request(span(t, name="honest")))
            if r.status_code != 200 or "partialSuccess" in r.json():
                failures.append(r.status_code)

    def hostile() -> None:
        for _ in range(15):
            _post(server.url, request(span(trace_id(), name="bad", start=HUGE, end=HUGE)))

    threads = [threading.Thread(target=honest) for _ in range(3)] + [
        threading.Thread(target=hostile) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert failures == []
    store = open_store(server.store_url, readonly=True)
    try:
        assert all(store.get_run(t) is not None for t in honest_traces)
    finally:
        store.close()


def _nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def test_deep_json_inside_input_value_rejects_only_its_span(server) -> None:  # type: ignore[no-untyped-def]
    t = trace_id()
    root = "1111111111111111"
    for depth in (254, 255, 256, 300, 1023, 1024, 1025, 5000):
        hostile = span(
            t, name=f"deep-{depth}", parent=root, **{"input.value": _nested(depth),
                                                   "input.mime_type": "application/json"}
        )  # fmt: skip
        r = _post(server.url, request(span(t, root, name="root"), hostile))
        assert r.status_code == 200, (depth, r.status_code, r.text)
    names = _stored(server, t)
    assert "root" in names and "deep-254" in names  # neighbours (and shallow JSON) stored


def test_method_not_allowed_names_the_allowed_methods(server) -> None:  # type: ignore[no-untyped-def]
    r = httpx.get(server.url + "/v1/traces")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    r = httpx.delete(server.url + "/api/v1/runs")
    assert r.status_code == 405 and set(r.headers["allow"].split(", ")) >= {"GET"}


# -- fuzz: hostile OTLP/JSON never answers 5xx ---------------------------------------------

_scalar = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)
_json_text = st.recursive(
    _scalar, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3)
).map(lambda v: json.dumps(v) if v is not None else "")
_time = st.one_of(
    st.integers(min_value=0, max_value=2**64 - 1).map(str),
    st.sampled_from(["-1", "1e30", "", "abc", str(2**64)]),
)
_value = st.one_of(
    st.builds(lambda s: {"stringValue": s}, st.one_of(st.text(max_size=40), _json_text)),
    st.builds(lambda i: {"intValue": str(i)}, st.integers(-(2**63), 2**63 - 1)),
    st.builds(lambda f: {"doubleValue": f}, st.floats(allow_nan=False)),
    st.just({"arrayValue": {"values": [{"stringValue": "x"}] * 3}}),
    st.just({}),
)
_keys = st.sampled_from(
    [
        "input.value",
        "output.value",
        "gen_ai.usage.input_tokens",
        "gen_ai.operation.name",
        "openinference.span.kind",
        "flightlog.record",
        "flightlog.step.index",
        "flightlog.run.declared_steps",
        "llm.token_count.prompt",
        "x",
    ]
)


@st.composite
def _hostile_span(draw: st.DrawFn) -> dict:  # type: ignore[type-arg]
    return {
        "traceId": draw(st.sampled_from(["ab" * 16, "cd" * 16, "00" * 16])),
        "spanId": draw(st.sampled_from(["01" * 8, "02" * 8, "03" * 8, "00" * 8])),
        "parentSpanId": draw(st.sampled_from(["", "01" * 8, "09" * 8])),
        "name": draw(st.text(max_size=20)),
        "kind": draw(st.integers(0, 5)),
        "startTimeUnixNano": draw(_time),
        "endTimeUnixNano": draw(_time),
        "attributes": [
            {"key": k, "value": v} for k, v in draw(st.lists(st.tuples(_keys, _value), max_size=6))
        ],
        "events": [
            {"name": "gen_ai.evaluation.result", "timeUnixNano": draw(_time)}
            for _ in range(draw(st.integers(0, 1)))
        ],
        "status": {"code": draw(st.integers(0, 2))},
    }


def test_fuzzed_otlp_never_answers_5xx(server) -> None:  # type: ignore[no-untyped-def]
    statuses: list[int] = []

    @given(spans=st.lists(_hostile_span(), min_size=1, max_size=4))
    @settings(
        max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def check(spans: list[dict]) -> None:  # type: ignore[type-arg]
        body = orjson.dumps(
            {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]},
            option=orjson.OPT_PASSTHROUGH_DATACLASS,
        )
        r = _post(server.url, body)
        statuses.append(r.status_code)
        assert r.status_code < 500, r.text

    check()
    assert httpx.get(server.url + "/readyz").status_code == 200
    assert 200 in statuses
