"""Every class of leak in ``tests/unit/privacy/test_leak_classes.py``, through OTLP/HTTP into a
real ``flightlog serve``, as protobuf and as OTLP/JSON, in every place a span can carry text:
resource attributes, the span's name, attributes (strings, arrays, maps), event attributes
(an event kept on the step, an exception's message and stack trace), link attributes, the
status message, OpenInference ``input.value``/``output.value``. Each secret is fresh; none
may be in the database file, its WAL, the server's log, the ledger, the API's answer or the
run's page in the UI."""

from __future__ import annotations

import base64
import secrets
import string
import time
from typing import Any

import httpx
import orjson
import pytest

from tests.integration.privacy.test_property_capture import (  # noqa: F401
    otlp_server,
    post_and_wait,
)
from tests.integration.privacy.test_seeded_secrets import (
    _card,
    _db_files,
    _found,
    _ledger_text,
    _raw_files,
)
from tests.integration.privacy.test_seeded_secrets import _rand as _tok
from tests.integration.server.conftest import ServerProcess


def _digits(n: int) -> str:
    return _tok(n, "123456789")


class Leaks:
    """Fresh secrets, each written as a trace would carry it (``texts``), and the part of
    each that must be found nowhere (``needles``)."""

    def __init__(self) -> None:
        pin, pw, tok = _digits(6), "Zq" + _tok(10), "Zq" + _tok(14)
        card = _card()
        self.needles: dict[str, str] = {}
        self.texts: dict[str, str] = {}

        def add(name: str, text: str, needle: str) -> None:
            self.texts[name] = text
            self.needles[name] = needle

        add("pin", f"PIN: {pin}", pin)
        add("repr", f"{{'api_key': '{tok}', 'model': 'gpt-4o'}}", tok)
        add("repr_short", f"connect(host='db', password='{pw[:2]}x')", f"'{pw[:2]}x'")
        add("phone_fullwidth", f"call ＋44 20 7946 {_digits(4)}", "")
        self.needles["phone_fullwidth"] = self.texts["phone_fullwidth"][-9:]
        add("db_url", f"postgresql://app:{pw}@db.internal/prod", pw)
        add("query", f"https://api.example.com/v1?q=1&private_token={tok}A", tok + "A")
        add("bearer", f"curl -H 'Authorization: Bearer {tok}B' https://x", tok + "B")
        add("aws_secret", f"AWS_SECRET_ACCESS_KEY={_tok(40)}", "")
        self.needles["aws_secret"] = self.texts["aws_secret"].split("=")[1]
        add("hf", "hf_" + _tok(34, string.ascii_letters), "")
        self.needles["hf"] = self.texts["hf"]
        add("email_unicode", f"write to jö{_tok(8).lower()}@exämple.com", "")
        self.needles["email_unicode"] = self.texts["email_unicode"].split()[-1].split("@")[0]
        add("email_obfuscated", f"{_tok(8).lower()} [at] example [dot] com", "")
        self.needles["email_obfuscated"] = self.texts["email_obfuscated"].split()[0]
        add("card_dots", ".".join(card[i : i + 4] for i in range(0, 16, 4)), "")
        self.needles["card_dots"] = self.texts["card_dots"]
        add("pair", f'[{{"name": "X-Api-Key", "value": "{tok}C"}}]', tok + "C")

    def all_text(self) -> str:
        return "\n".join(self.texts.values())


def _any(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_any(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": _attrs(value)}}
    raise TypeError(value)


def _attrs(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _any(v)} for k, v in values.items()]


def _request(leaks: Leaks, trace_id: bytes) -> dict[str, Any]:
    """An OTLP/JSON request (hex ids) with a leak in every place a span carries text."""
    t = leaks.texts
    now = time.time_ns()
    root_id, child_id = secrets.token_bytes(8), secrets.token_bytes(8)
    names = list(t)
    spread = {f"app.note.{i}": t[n] for i, n in enumerate(names)}
    root = {
        "traceId": trace_id.hex(),
        "spanId": root_id.hex(),
        "name": f"agent {t['pin']}",
        "kind": 1,
        "startTimeUnixNano": str(now),
        "endTimeUnixNano": str(now + 10_000),
        "attributes": _attrs(
            {
                "openinference.span.kind": "AGENT",
                "input.value": t["repr"],
                "output.value": t["pair"],
                **spread,
            }
        ),
        "status": {"code": 2, "message": t["db_url"] + " " + t["repr_short"]},
    }
    child = {
        "traceId": trace_id.hex(),
        "spanId": child_id.hex(),
        "parentSpanId": root_id.hex(),
        "name": f"tool {t['query']}",
        "kind": 1,
        "startTimeUnixNano": str(now + 1),
        "endTimeUnixNano": str(now + 9_000),
        "attributes": _attrs(
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.call.arguments": orjson.dumps({"cmd": t["bearer"]}).decode(),
                "app.list": [t["hf"], t["card_dots"]],
                "app.map": {"env": t["aws_secret"], "contact": t["email_unicode"]},
            }
        ),
        "events": [
            {
                "timeUnixNano": str(now + 100),
                "name": "retry",
                "attributes": _attrs({"note": t["email_obfuscated"], "why": t["phone_fullwidth"]}),
            },
            {
                "timeUnixNano": str(now + 200),
                "name": "exception",
                "attributes": _attrs(
                    {
                        "exception.type": "ConnectionError",
                        "exception.message": t["db_url"],
                        "exception.stacktrace": "Traceback:\n  " + leaks.all_text(),
                    }
                ),
            },
        ],
        "links": [
            {
                "traceId": secrets.token_bytes(16).hex(),
                "spanId": secrets.token_bytes(8).hex(),
                "attributes": _attrs({"why": t["pin"], "from": t["repr"]}),
            }
        ],
        "status": {"code": 2, "message": t["bearer"]},
    }
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": _attrs(
                        {"service.name": "leak-svc", "deployment.note": t["pair"], **spread}
                    )
                },
                "scopeSpans": [{"scope": {"name": "leaks"}, "spans": [root, child]}],
            }
        ]
    }


def _protobuf(doc: dict[str, Any]) -> bytes:
    from google.protobuf.json_format import ParseDict
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    doc = orjson.loads(orjson.dumps(doc))
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for item in (span, *span.get("links", [])):
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in item:
                            item[key] = base64.b64encode(bytes.fromhex(item[key])).decode()
    return ParseDict(doc, ExportTraceServiceRequest()).SerializeToString()


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_no_leak_class_reaches_the_store_ledger_api_or_ui(
    otlp_server: ServerProcess,  # noqa: F811
    encoding: str,
) -> None:
    server = otlp_server
    leaks = Leaks()
    trace_id = secrets.token_bytes(16)
    doc = _request(leaks, trace_id)
    if encoding == "json":
        body, ctype = orjson.dumps(doc), "application/json"
    else:
        body, ctype = _protobuf(doc), "application/x-protobuf"
    run_id = trace_id.hex()
    api = post_and_wait(server, body, ctype, run_id)
    page = httpx.get(f"{server.url}/runs/{run_id}", timeout=10).content
    assert b"[redacted" in api
    assert b"leak-svc" in api  # (the search works: what is no secret is there)
    needles = {name: n.encode() for name, n in leaks.needles.items()}
    needles |= {f"{name} (JSON)": orjson.dumps(n)[1:-1] for name, n in leaks.needles.items()}
    assert server.log is not None
    files = _raw_files([*_db_files(server.db), server.log]) | _ledger_text(server.db)
    files |= {server.db.with_name("api"): api, server.db.with_name("ui"): page}
    assert _found(files, needles) == []
