"""The OpenAPI 3.0 document served at ``/openapi.json`` (tested against the routes with
schemathesis). The paths are written here; the schemas of the records (``Run``, ``Step``,
``Edge``, ``Finding``) are generated from ``flightlog.model`` (``server.schemas``), so a field
added to a record appears here without an edit (``tests/unit/test_one_schema.py``).

Long on purpose: one document, one path per block, read top to bottom like the API it
describes (splitting it would scatter the paths without separating concerns)."""

from __future__ import annotations

from typing import Any

from flightlog.server.schemas import (
    RELIABILITY_SCHEMAS,
    attribution_schema,
    record_schemas,
    run_status,
)

_ERROR = {"$ref": "#/components/schemas/Error"}
_NULLABLE_INT = {"type": "integer", "nullable": True}


def _resp(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": _resp(_ERROR, "Invalid parameter"),
    "404": _resp(_ERROR, "No such run"),
    "503": _resp(_ERROR, "Store unavailable"),
}
_RUN_ID = {
    "name": "run_id",
    "in": "path",
    "required": True,
    "description": "A run id (32 hex digits) or an unambiguous prefix of one",
    "schema": {"type": "string"},
}


_SINCE = r"^([0-9]{1,6}[smhdw]|[12][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8]))$"


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def q(name: str, schema: dict[str, Any], desc: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": desc}


_BIG = 2**63 - 1
_RELIABILITY_WINDOW = [
    q("days", {"type": "integer", "minimum": 1, "maximum": 3660}, "Window in days (default 30)"),
    q(
        "since_ns",
        {"type": "integer", "minimum": 0, "maximum": _BIG},
        "Runs started at or after (ns since the epoch); overrides days",
    ),
    q(
        "until_ns",
        {"type": "integer", "minimum": 0, "maximum": _BIG},
        "Runs started before (ns since the epoch; default now)",
    ),
]


def document(version: str) -> dict[str, Any]:
    records = record_schemas()
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Flightlog",
            "version": version,
            "description": "Flightlog server: OTLP/HTTP trace ingestion and the REST API. "
            "Once API keys exist (flightlog keys), every path but /healthz and /readyz needs "
            "Authorization: Bearer <key> (401 without, 403 for the wrong scope) and reads see "
            "only the key's project (docs/security.md).",
        },
        # Either a key or, on a server without keys, nothing.
        "security": [{"bearer": []}, {}],
        "paths": {
            "/healthz": {
                "get": {
                    "summary": "Liveness",
                    "responses": {
                        "200": _resp(
                            {
                                "type": "object",
                                "required": ["status"],
                                "properties": {"status": {"type": "string"}},
                            },
                            "Alive",
                        )
                    },
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness: store writable, queue not full",
                    "responses": {
                        "200": _resp({"type": "object"}, "Ready"),
                        "503": _resp({"type": "object"}, "Not ready"),
                    },
                }
            },
            "/api/v1/runs": {
                "get": {
                    "summary": "List runs, newest first",
                    "parameters": [
                        q("workflow", {"type": "string"}, "Only runs of this workflow"),
                        q(
                            "status",
                            run_status(records),
                            "Only runs with this status",
                        ),
                        q("owner", {"type": "string"}, "Only runs with this owner"),
                        q(
                            "since_ns",
                            {"type": "integer", "minimum": 0, "maximum": 9223372036854775807},
                            "Started at or after (ns since the epoch)",
                        ),
                        q(
                            "until_ns",
                            {"type": "integer", "minimum": 0, "maximum": 9223372036854775807},
                            "Started before (ns since the epoch)",
                        ),
                        q(
                            "limit",
                            {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
                            "Page size",
                        ),
                        q(
                            "offset",
                            {
                                "type": "integer",
                                "minimum": 0,
                                "maximum": 9223372036854775807,
                                "default": 0,
                            },
                            "Runs to skip",
                        ),
                    ],
                    "responses": {
                        "200": _resp(
                            {
                                "type": "object",
                                "required": ["runs", "total", "limit", "offset"],
                                "properties": {
                                    "runs": {"type": "array", "items": ref("Run")},
                                    "total": {"type": "integer"},
                                    "limit": {"type": "integer"},
                                    "offset": {"type": "integer"},
                                    "next_offset": _NULLABLE_INT,
                                },
                            },
                            "A page of runs",
                        ),
                        "400": _ERRORS["400"],
                        "503": _ERRORS["503"],
                    },
                }
            },
            "/api/v1/runs/{run_id}": {
                "get": {
                    "summary": "A run with its steps, edges and findings",
                    "parameters": [_RUN_ID],
                    "responses": {
                        "200": _resp(
                            {
                                "type": "object",
                                "required": ["run", "steps", "edges", "findings"],
                                "properties": {
                                    "run": ref("Run"),
                                    "steps": {"type": "array", "items": ref("Step")},
                                    "edges": {"type": "array", "items": ref("Edge")},
                                    "findings": {"type": "array", "items": ref("Finding")},
                                },
                            },
                            "The run",
                        ),
                        **_ERRORS,
                    },
                }
            },
            "/api/v1/runs/{run_id}/lineage": {
                "get": {
                    "summary": "The run's lineage graph: steps and parent/data/handoff edges",
                    "parameters": [_RUN_ID],
                    "responses": {
                        "200": _resp(
                            {
                                "type": "object",
                                "required": ["run_id", "nodes", "edges"],
                                "properties": {
                                    "run_id": {"type": "string"},
                                    "nodes": {"type": "array", "items": {"type": "object"}},
                                    "edges": {"type": "array", "items": ref("Edge")},
                                },
                            },
                            "Lineage",
                        ),
                        **_ERRORS,
                    },
                }
            },
            "/api/v1/runs/{run_id}/findings": {
                "get": {
                    "summary": "The run's findings, oldest first",
                    "parameters": [_RUN_ID],
                    "responses": {
                        "200": _resp(
                            {
                                "type": "object",
                                "required": ["run_id", "findings"],
                                "properties": {
                                    "run_id": {"type": "string"},
                                    "findings": {"type": "array", "items": ref("Finding")},
                                },
                            },
                            "Findings",
                        ),
                        **_ERRORS,
                    },
                }
            },
            "/api/v1/runs/{run_id}/attribution": {
                "get": {
                    "summary": "Why the run failed: what `flightlog why RUN --json` prints "
                    "(failure point, root cause, chain, evidence, confidence, alternatives)",
                    "parameters": [_RUN_ID],
                    "responses": {
                        "200": _resp(ref("Attribution"), "The attribution"),
                        **_ERRORS,
                    },
                }
            },
            "/api/v1/payloads/{hash}": {
                "get": {
                    "summary": "A captured input or output by its SHA-256",
                    "parameters": [
                        {
                            "name": "hash",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
                        }
                    ],
                    "responses": {
                        "200": _resp(
                            {
                                "type": "object",
                                "required": ["hash", "value"],
                                "properties": {"hash": {"type": "string"}, "value": {}},
                            },
                            "The payload",
                        ),
                        **_ERRORS,
                    },
                }
            },
            "/api/v1/workflows": {
                "get": {
                    "summary": "Every workflow name seen",
                    "responses": {
                        "200": _resp(
                            {
                                "type": "object",
                                "required": ["workflows"],
                                "properties": {
                                    "workflows": {"type": "array", "items": {"type": "string"}}
                                },
                            },
                            "Workflow names",
                        ),
                        "503": _ERRORS["503"],
                    },
                }
            },
            "/api/v1/reliability": {
                "get": {
                    "summary": "Reliability of every workflow (or one) over a window of runs",
                    "description": "End-to-end and per-step rates with 95% Wilson intervals, "
                    "the product of steps and the gap, pass^k, failures per 1,000 runs, failure "
                    "share by root cause, cost and the trend per day (docs/reliability.md).",
                    "parameters": [
                        q("workflow", {"type": "string"}, "Only this workflow"),
                        *_RELIABILITY_WINDOW,
                    ],
                    "responses": {
                        "200": _resp(ref("Reliability"), "Reliability figures"),
                        "400": _ERRORS["400"],
                        "503": _ERRORS["503"],
                    },
                }
            },
            "/api/v1/reliability/{workflow}": {
                "get": {
                    "summary": "Reliability of one workflow over a window of runs",
                    "parameters": [
                        {
                            "name": "workflow",
                            "in": "path",
                            "required": True,
                            "description": "A workflow name",
                            "schema": {"type": "string"},
                        },
                        *_RELIABILITY_WINDOW,
                    ],
                    "responses": {
                        "200": _resp(ref("Reliability"), "Reliability figures"),
                        "400": _ERRORS["400"],
                        "503": _ERRORS["503"],
                    },
                }
            },
            "/api/v1/audit/records/{record}": {
                "get": {
                    "summary": "Whether a record is provable yet: its inclusion proof once "
                    "integrated into the audit log, 202 while its entry is pending",
                    "parameters": [
                        {
                            "name": "record",
                            "in": "path",
                            "required": True,
                            "description": "A leaf index (#N or N), a run id or unambiguous "
                            "prefix, a step id, a finding id or a ledger record id; the "
                            "record's latest entry (not blank, no NUL character)",
                            "schema": {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": 512,
                                "pattern": "^[^\\x00]*[^\\s\\x00][^\\x00]*$",
                            },
                        }
                    ],
                    "responses": {
                        "200": _resp(
                            {
                                "type": "object",
                                "required": ["record", "state", "index", "proof"],
                                "properties": {
                                    "record": {"type": "string"},
                                    "state": {"type": "string", "enum": ["integrated"]},
                                    "run_id": {"type": "string", "nullable": True},
                                    "index": {"type": "integer", "minimum": 0},
                                    "checkpoint_size": {"type": "integer", "minimum": 1},
                                    "origin": {"type": "string"},
                                    "proof": {
                                        "type": "string",
                                        "description": "C2SP tlog-proof (entry, inclusion "
                                        "proof, signed checkpoint), as `flightlog audit "
                                        "prove` writes it",
                                    },
                                },
                            },
                            "Integrated: provable",
                        ),
                        "202": {
                            **_resp(
                                {
                                    "type": "object",
                                    "required": ["record", "state", "pending_id"],
                                    "properties": {
                                        "record": {"type": "string"},
                                        "state": {"type": "string", "enum": ["pending"]},
                                        "run_id": {"type": "string", "nullable": True},
                                        "pending_id": {"type": "integer"},
                                        "retry_after": {"type": "integer"},
                                        "message": {"type": "string"},
                                    },
                                },
                                "Acknowledged, not provable yet: ask again after Retry-After",
                            ),
                            "headers": {
                                "Retry-After": {
                                    "description": "Seconds to wait",
                                    "schema": {"type": "integer"},
                                }
                            },
                        },
                        "400": _resp(_ERROR, "Invalid record"),
                        "404": _resp(_ERROR, "No ledger entry for the record (or not visible)"),
                        "409": _resp(_ERROR, "The audit ledger is off on this server"),
                        "503": _resp(_ERROR, "Store unavailable"),
                    },
                }
            },
            "/api/v1/ingest/stats": {
                "get": {
                    "summary": "Ingestion counters since the server started",
                    "responses": {
                        "200": _resp(
                            {
                                "type": "object",
                                "required": [
                                    "requests",
                                    "spans_stored",
                                    "spans_rejected",
                                    "pending_spans",
                                ],
                                "properties": {
                                    **{
                                        k: {"type": "number"}
                                        for k in (
                                            "requests",
                                            "spans_stored",
                                            "spans_rejected",
                                            "transactions",
                                            "write_errors",
                                            "overloaded",
                                            "decode_seconds",
                                            "write_seconds",
                                            "pipeline_seconds",
                                            "write_cpu_seconds",
                                            "pipeline_cpu_seconds",
                                            "write_lock_wait_seconds",
                                            "pipeline_lock_wait_seconds",
                                            "run_end_worker_restarts",
                                            "run_end_worker_cpu_seconds",
                                            "pending_spans",
                                        )
                                    },
                                    "pipeline_errors": {
                                        "type": "number",
                                        "description": "Errors of run-end work: each stage, "
                                        "work or hook that raised, plus one per abandoned batch",
                                    },
                                    "idle_closed": {
                                        "type": "number",
                                        "description": "Traces closed without their root "
                                        "span after the idle timeout ([server] "
                                        "idle_trace_timeout)",
                                    },
                                    "body_bytes_held": {
                                        "type": "number",
                                        "description": "Bytes of request bodies admitted and "
                                        "not yet answered (now)",
                                    },
                                    "admission_shed": {
                                        "type": "number",
                                        "description": "Requests answered 429 because the "
                                        "request bodies held were at their limit",
                                    },
                                    "admission_timeouts": {
                                        "type": "number",
                                        "description": "Requests whose body did not arrive in time",
                                    },
                                    "admission_waiting_for_decode": {
                                        "type": "number",
                                        "description": "Requests waiting for a decode slot (now)",
                                    },
                                    "run_end_batches_abandoned": {
                                        "type": "number",
                                        "description": "Batches of ended runs whose run-end "
                                        "work was abandoned (workers kept dying on them, or "
                                        "the server shut down with one in hand)",
                                    },
                                    "run_end_runs_abandoned": {
                                        "type": "number",
                                        "description": "Ended runs in those batches",
                                    },
                                    "run_end_mode": {
                                        "type": "string",
                                        "enum": ["process", "thread"],
                                        "description": "Where run-end work runs ([server] run_end)",
                                    },
                                    "run_end_worker_pid": {
                                        "type": "integer",
                                        "nullable": True,
                                        "description": "The run-end worker process",
                                    },
                                    "run_end_worker_failing": {
                                        "type": "string",
                                        "nullable": True,
                                        "description": "Why the run-end worker keeps dying "
                                        "(its last exit status and stderr line), or null",
                                    },
                                },
                            },
                            "Counters",
                        )
                    },
                }
            },
            "/": {
                "get": {
                    "summary": "Web UI: runs, newest first, filtered and paged (HTML)",
                    "parameters": [
                        q("workflow", {"type": "string"}, "Only this workflow"),
                        q(
                            "status",
                            run_status(records),
                            "Only this status",
                        ),
                        q(
                            "since",
                            {"type": "string", "pattern": _SINCE},
                            "Started within a duration (30m, 2h, 7d) or after an ISO-8601 date or "
                            "time (times are accepted too, though the pattern names dates only)",
                        ),
                        q("owner", {"type": "string"}, "Only this owner"),
                        q(
                            "limit",
                            {"type": "integer", "minimum": 1, "maximum": 500},
                            "Runs per page (default 50)",
                        ),
                        q(
                            "offset",
                            {"type": "integer", "minimum": 0, "maximum": 2**62},
                            "Runs to skip",
                        ),
                    ],
                    "responses": {
                        "200": _html("HTML page"),
                        "400": _html("A filter value the page cannot use"),
                    },
                }
            },
            "/runs/{run_id}": {
                "get": {
                    "summary": "Web UI: one run: attribution, lineage graph, steps (HTML; every "
                    "captured value escaped)",
                    "parameters": [_RUN_ID],
                    "responses": {"200": _html("HTML page"), "404": _html("No such run")},
                }
            },
            "/runs/{run_id}/report": {
                "get": {
                    "summary": "Web UI: the blameless postmortem of a run (HTML)",
                    "parameters": [_RUN_ID],
                    "responses": {"200": _html("HTML page"), "404": _html("No such run")},
                }
            },
            "/incidents": {
                "get": {
                    "summary": "Web UI: incidents (failed runs grouped by fingerprint) (HTML)",
                    "parameters": [
                        q(
                            "state",
                            {
                                "type": "string",
                                "enum": ["open", "triggered", "acknowledged", "resolved"],
                            },
                            "Only incidents in this state (open = not resolved)",
                        )
                    ],
                    "responses": {"200": _html("HTML page"), "400": _html("Unknown state")},
                }
            },
            "/incidents/{incident_id}": {
                "get": {
                    "summary": "Web UI: one incident with its affected runs and timeline (HTML)",
                    "parameters": [
                        {
                            "name": "incident_id",
                            "in": "path",
                            "required": True,
                            "description": "12, INC-12",
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {"200": _html("HTML page"), "404": _html("No such incident")},
                }
            },
            "/audit": {
                "get": {
                    "summary": "Web UI: the audit ledger's status (HTML)",
                    "responses": {"200": _html("HTML page")},
                }
            },
            "/reliability": {
                "get": {
                    "summary": "Web UI: reliability with charts (HTML, inline SVG)",
                    "parameters": [
                        q("workflow", {"type": "string"}, "Only this workflow"),
                        q(
                            "days",
                            {"type": "integer", "minimum": 1, "maximum": 3660},
                            "Window in days (default 30)",
                        ),
                    ],
                    "responses": {
                        "200": _html("HTML page"),
                        "400": _html("A parameter the page cannot use"),
                    },
                }
            },
            "/v1/traces": {
                "post": {
                    "summary": "OTLP/HTTP trace export (protobuf or OTLP/JSON, optionally gzip)",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/x-protobuf": {
                                "schema": {"type": "string", "format": "binary"}
                            },
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "description": "An ExportTraceServiceRequest in the OTLP/JSON"
                                    " encoding (opentelemetry-proto); other objects get 400",
                                }
                            },
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "Stored (possibly partially: see partialSuccess)",
                            "content": {
                                "application/json": {"schema": {"type": "object"}},
                                "application/x-protobuf": {
                                    "schema": {"type": "string", "format": "binary"}
                                },
                            },
                        },
                        "400": {"description": "Malformed request (google.rpc.Status)"},
                        "408": {"description": "Body did not arrive in time"},
                        "413": {"description": "Body too large"},
                        "415": {"description": "Unsupported content type or encoding"},
                        "429": {"description": "Ingestion queue full; honour Retry-After"},
                        "503": {"description": "Store unavailable; honour Retry-After"},
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key from flightlog keys create",
                }
            },
            "schemas": {
                **RELIABILITY_SCHEMAS,
                "Attribution": attribution_schema(),
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["status", "message"],
                            "properties": {
                                "status": {"type": "integer"},
                                "message": {"type": "string"},
                            },
                        }
                    },
                },
                **records,
            },
        },
    }
