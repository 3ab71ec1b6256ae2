"""Property, through every capture path: nothing the rules scrub is stored.

Nested attributes and payloads with secrets at any depth (``tests/unit/privacy/secret_trees``)
are captured through the SDK into a real SQLite store (``flightlog.run`` input and attributes,
``flightlog.step`` attributes, arguments and output, ``annotate``) and through OTLP/HTTP into a
real ``flightlog serve`` (span attributes as OTLP maps and arrays, OpenInference's flattened
indexed keys, ``input.value`` JSON). Each case is captured twice: first with harmless values
under the same keys (every cache of the scrubber warm: key sets, screens of keys), then with
the secrets. What the reference scrubber (no screen: every rule on every text, every value
walked) takes out of the captured value must then be nowhere in what was stored: the SDK's
rows are compared with the reference exactly, and the server's database file, its WAL and its
log are searched byte by byte.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flightlog
from flightlog.payload import encode_value
from flightlog.privacy import load
from flightlog.sdk.context import _json_safe
from tests.integration.server.conftest import ServerProcess, free_port
from tests.unit.privacy.secret_trees import (
    AFTER,
    BEFORE,
    harmless_twin,
    json_values,
    mappings,
    pattern_secrets,
    reference,
)

REFERENCE = reference(load({}))
CASES = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


# -- SDK into SQLite ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sdk_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    db = tmp_path_factory.mktemp("sdk") / "flightlog.db"
    flightlog.configure(f"sqlite:///{db}")
    try:
        yield db
    finally:
        flightlog.shutdown()


def _record(run_attrs: Any, step_attrs: Any, notes: Any, inp: Any, out: Any) -> str:
    @flightlog.step(kind="tool", attributes=step_attrs)
    def tool(arg: Any) -> Any:
        flightlog.annotate(**notes)
        return out

    with flightlog.run("property", input=inp, attributes=run_attrs) as run:
        tool(inp)
    assert flightlog.flush()
    return run.id


def _row(db: Path, sql: str, *args: Any) -> Any:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, args).fetchone()
    finally:
        conn.close()


def _payload(db: Path, digest: str | None) -> Any:
    if digest is None:  # no input recorded (None)
        return None
    (data,) = _row(db, "SELECT data FROM payloads WHERE hash = ?", digest)
    return orjson.loads(data)


@CASES
@given(mappings(), mappings(), mappings(), json_values(), json_values())
def test_sdk_stores_nothing_the_rules_scrub(
    sdk_store: Path, run_case: tuple, step_case: tuple, note_case: tuple, inp: tuple, out: tuple
) -> None:
    cases = (run_case, step_case, note_case, inp, out)
    _record(*(harmless_twin(c[0]) for c in cases))
    run_id = _record(*(c[0] for c in cases))

    want_run = REFERENCE.mapping(_json_safe(run_case[0]))
    want_step = REFERENCE.mapping({**_json_safe(step_case[0]), **_json_safe(note_case[0])})
    want_in = REFERENCE.json(orjson.loads(encode_value(inp[0])))
    want_out = REFERENCE.json(orjson.loads(encode_value(out[0])))

    run_attrs, run_in = _row(
        sdk_store, "SELECT attributes, input_hash FROM runs WHERE id = ?", run_id
    )
    step_attrs, step_in, step_out = _row(
        sdk_store,
        "SELECT attributes, input_hash, output_hash FROM steps WHERE run_id = ? AND name = ?",
        run_id,
        "tool",
    )
    assert orjson.loads(run_attrs) == want_run
    assert orjson.loads(step_attrs) == want_step
    assert _payload(sdk_store, run_in) == want_in
    assert _payload(sdk_store, step_in) == {"arg": want_in}
    assert _payload(sdk_store, step_out) == want_out


# -- OTLP/HTTP into a real server --------------------------------------------------------------


@pytest.fixture(scope="module")
def otlp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("otlp") / "flightlog.db", free_port()).start()
    try:
        yield server
    finally:
        server.stop()


def _flattened(prefix: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """OpenInference's indexed keys: ``prefix.0.key`` (folded back into lists by the server)."""
    return {f"{prefix}.{i}.{k}": v for i, item in enumerate(items) for k, v in item.items()}


def _set(attributes: Any, values: dict[str, Any]) -> None:
    from flightlog.otel._values import set_any_value

    for k, v in values.items():
        if v is None:
            continue
        kv = attributes.add()
        kv.key = str(k)
        set_any_value(kv.value, v)


def _request(
    trace_id: bytes, root: dict[str, Any], child: dict[str, Any], extra: dict[str, Any]
) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    _set(rs.resource.attributes, {**extra, "service.name": "property-svc"})
    spans = rs.scope_spans.add()
    now = time.time_ns()
    root_id = secrets.token_bytes(8)
    for i, (attrs, span_id, parent) in enumerate(
        [(root, root_id, b""), (child, secrets.token_bytes(8), root_id)]
    ):
        span = spans.spans.add()
        span.trace_id = trace_id
        span.span_id = span_id
        span.parent_span_id = parent
        span.name = "agent" if i == 0 else "llm call"
        span.start_time_unix_nano = now + i
        span.end_time_unix_nano = now + 1000 + i
        _set(span.attributes, attrs)
        if i == 1:  # an event with attributes of its own (an evaluation, an exception)
            event = span.events.add()
            event.name = "gen_ai.evaluation.result" if len(extra) % 2 else "exception"
            event.time_unix_nano = now + 500
            _set(event.attributes, extra)
    return req.SerializeToString()


def _send(
    server: ServerProcess, root: dict[str, Any], child: dict[str, Any], extra: dict[str, Any]
) -> str:
    trace_id = secrets.token_bytes(16)
    post_and_wait(server, _request(trace_id, root, child, extra), "application/x-protobuf",
                  trace_id.hex())  # fmt: skip
    return trace_id.hex()


def post_and_wait(server: ServerProcess, body: bytes, ctype: str, run_id: str) -> bytes:
    """POST an OTLP request, then wait until its run's two spans are stored: the API's
    answer."""
    r = httpx.post(
        f"{server.url}/v1/traces", content=body, headers={"Content-Type": ctype}, timeout=30
    )
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = httpx.get(f"{server.url}/api/v1/runs/{run_id}", timeout=10)
        if got.status_code == 200 and len(got.json().get("steps", [])) >= 2:
            return got.content
        time.sleep(0.05)
    pytest.fail(f"trace {run_id} was not stored")


def _spans(
    attrs: dict[str, Any], nested: dict[str, Any], value: Any, extra: dict[str, Any]
) -> tuple[dict, dict, dict]:
    root = dict(attrs)
    root["openinference.span.kind"] = "AGENT"
    root["input.value"] = orjson.dumps(value).decode()
    root["input.mime_type"] = "application/json"
    child = {"openinference.span.kind": "LLM", **_flattened("llm.input_messages", [nested])}
    return root, child, extra


_STORED_ON_PURPOSE: set[bytes] = set()


@CASES
@given(
    mappings(),
    mappings(),
    json_values(),
    mappings(),
    st.tuples(st.sampled_from(BEFORE), pattern_secrets(), st.sampled_from(AFTER)),
)
def test_otlp_server_stores_nothing_the_rules_scrub(
    otlp_server: ServerProcess,
    attrs: tuple,
    nested: tuple,
    value: tuple,
    extra: tuple,
    message: tuple,
) -> None:
    """Span attributes, OpenInference's indexed keys, ``input.value``, and a mapping as the
    resource's attributes and an event's (an exception's message or an evaluation's
    explanation holding a secret too)."""
    before, secret, after = message
    text = f"failed for{before}{secret}{after}"
    extra[0].update({"exception.message": text, "gen_ai.evaluation.explanation": text})
    extra[1].by_pattern.append(secret)
    cases = (attrs, nested, value, extra)
    _send(otlp_server, *_spans(*(harmless_twin(c[0]) for c in cases)))
    run_id = _send(otlp_server, *_spans(*(c[0] for c in cases)))

    # what the reference takes out of every value (a secret shrunk to the same text in two
    # values, taken out of one and kept in the other, is not expected gone)
    kept = b"\n".join(
        orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS, default=repr)
        for v in (
            REFERENCE.mapping(attrs[0]),
            REFERENCE.mapping(nested[0]),
            REFERENCE.json(value[0]),
            REFERENCE.mapping(extra[0]),
        )
    )
    planted = attrs[1].all() + nested[1].all() + value[1].all() + extra[1].all()
    removed = [s.encode() for s in planted if s.encode() not in kept]
    _STORED_ON_PURPOSE.update(s.encode() for s in planted if s.encode() in kept)
    api = httpx.get(f"{otlp_server.url}/api/v1/runs/{run_id}", timeout=10).content
    assert otlp_server.log is not None
    stored = b"".join(
        p.read_bytes()
        for p in (
            otlp_server.db,
            Path(f"{otlp_server.db}-wal"),
            otlp_server.log,
        )
        if p.exists()
    )
    assert [s for s in removed if s in api] == []
    # (the database holds every example: a secret stored on purpose by an earlier one, glued
    # to a word there, is looked for in this run's answer only)
    assert [s for s in removed if s in stored and s not in _STORED_ON_PURPOSE] == []


def test_sdk_step_attributes_of_other_types_are_scrubbed(sdk_store: Path) -> None:
    """``flightlog.step(attributes=...)`` took values as given: a tuple, a dict subclass and a
    str-subclass key reached the store unscrubbed. They are recorded as JSON, as ``annotate``
    and ``flightlog.run`` record theirs."""
    import collections
    import enum

    class Key(enum.StrEnum):
        PASSWORD = "password"

    key = "sk-proj-" + "Zq" * 16
    attrs = {
        "t": (key, 1),
        "h": collections.OrderedDict(Authorization="opaque-Zq123"),
        Key.PASSWORD: "opaque-Zq456",
    }
    run_id = _record({}, attrs, {}, None, None)
    (stored,) = _row(
        sdk_store, "SELECT attributes FROM steps WHERE run_id = ? AND name = ?", run_id, "tool"
    )
    assert orjson.loads(stored) == {
        "t": ["[redacted: openai_key]", 1],
        "h": {"Authorization": "[redacted: credential]"},
        "password": "[redacted: credential]",
    }
