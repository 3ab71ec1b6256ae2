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

import flightlog
from flightlog.payload import encode_value
from flightlog.privacy import load
from flightlog.sdk.context import _json_safe
from tests.integration.server.conftest import ServerProcess, free_port
from tests.unit.privacy.secret_trees import Planted, harmless_twin, json_values, mappings, reference

REFERENCE = reference(load({}))
CASES = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _removed(planted: Planted, scrubbed: Any) -> list[bytes]:
    """The planted secrets the reference took out of a value (the others are not secrets
    to the rules: a key word glued to other letters, say)."""
    text = orjson.dumps(scrubbed, option=orjson.OPT_NON_STR_KEYS, default=repr)
    return [s.encode() for s in planted.all() if s.encode() not in text]


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


def _request(trace_id: bytes, root: dict[str, Any], child: dict[str, Any]) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from flightlog.otel._values import set_any_value

    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key = "service.name"
    kv.value.string_value = "property-svc"
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
        for k, v in attrs.items():
            if v is None:
                continue
            kv = span.attributes.add()
            kv.key = str(k)
            set_any_value(kv.value, v)
    return req.SerializeToString()


def _send(server: ServerProcess, root: dict[str, Any], child: dict[str, Any]) -> str:
    trace_id = secrets.token_bytes(16)
    r = httpx.post(
        f"{server.url}/v1/traces",
        content=_request(trace_id, root, child),
        headers={"Content-Type": "application/x-protobuf"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    run_id = trace_id.hex()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = httpx.get(f"{server.url}/api/v1/runs/{run_id}", timeout=10)
        if got.status_code == 200 and len(got.json().get("steps", [])) >= 2:
            return run_id
        time.sleep(0.05)
    pytest.fail(f"trace {run_id} was not stored")


def _spans(attrs: dict[str, Any], nested: dict[str, Any], value: Any) -> tuple[dict, dict]:
    root = dict(attrs)
    root["openinference.span.kind"] = "AGENT"
    root["input.value"] = orjson.dumps(value).decode()
    root["input.mime_type"] = "application/json"
    child = {"openinference.span.kind": "LLM", **_flattened("llm.input_messages", [nested])}
    return root, child


@CASES
@given(mappings(), mappings(), json_values())
def test_otlp_server_stores_nothing_the_rules_scrub(
    otlp_server: ServerProcess, attrs: tuple, nested: tuple, value: tuple
) -> None:
    _send(
        otlp_server,
        *_spans(harmless_twin(attrs[0]), harmless_twin(nested[0]), harmless_twin(value[0])),
    )
    run_id = _send(otlp_server, *_spans(attrs[0], nested[0], value[0]))

    removed = (
        _removed(attrs[1], REFERENCE.mapping(attrs[0]))
        + _removed(nested[1], REFERENCE.mapping(nested[0]))
        + _removed(value[1], REFERENCE.json(value[0]))
    )
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
    assert [s for s in removed if s in stored] == []


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
