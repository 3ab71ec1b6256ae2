"""OTLP/JSON request bodies for the security suite (built by hand: hostile values included)."""

from __future__ import annotations

import secrets
from typing import Any

import orjson

NS = 1_700_000_000_000_000_000


def span(
    trace: str,
    span_id: str | None = None,
    *,
    name: str = "root",
    parent: str | None = None,
    start: int | str = NS,
    end: int | str = NS + 1_000_000_000,
    error: bool = False,
    **attrs: str,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": trace,
        "spanId": span_id or secrets.token_hex(8),
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(end),
        "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attrs.items()],
    }
    if parent:
        out["parentSpanId"] = parent
    if error:
        out["status"] = {"code": 2, "message": "failed"}
    return out


def request(*spans: dict[str, Any], service: str = "svc") -> bytes:
    return orjson.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
                    },
                    "scopeSpans": [{"scope": {"name": "security-suite"}, "spans": list(spans)}],
                }
            ]
        }
    )


def trace_id() -> str:
    return secrets.token_hex(16)
