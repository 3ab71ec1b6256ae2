"""REST API under ``/api/v1/``: runs, a run with its steps, lineage, findings, attribution,
payloads.

Every error is JSON: ``{"error": {"status": 404, "message": "..."}}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from flightlog import _json
from flightlog.errors import FlightlogError, NotFoundError
from flightlog.model import RUN_STATUSES
from flightlog.store.base import RunQuery

if TYPE_CHECKING:
    from flightlog.store.base import StoreReader

    pass

MAX_LIMIT = 1000


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_response(value: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(_json.tidy(value), option=orjson.OPT_NON_STR_KEYS, default=_json._fallback),
        status_code=status,
        media_type="application/json",
    )


def error_json(status: int, message: str) -> Response:
    return json_response({"error": {"status": status, "message": message}}, status)


def _int_param(request: Request, name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"query parameter {name}={raw!r} is not an integer") from None
    if not lo <= value <= hi:
        raise ApiError(400, f"query parameter {name}={value} is out of range [{lo}, {hi}]")
    return value


def _str_param(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    return raw if raw else None


class Api:
    """Handlers over a read-side store, seen from the caller's project: ``store_for(request)``
    gives the store to read (a ``ProjectStore`` when the server has API keys)."""

    def __init__(
        self, store_for: Callable[[Request], StoreReader], server_store: StoreReader | None = None
    ) -> None:
        self.store_for = store_for
        # Every project's runs: only for server-wide routes (reliability), which the guard
        # opens to admin keys alone.
        self.server_store = server_store

    def _run_id(self, request: Request) -> str:
        prefix = str(request.path_params["run_id"])
        try:
            return str(self.store_for(request).resolve_run_id(prefix))
        except NotFoundError as exc:
            raise ApiError(404, str(exc)) from exc

    def list_runs(self, request: Request) -> Response:
        status = _str_param(request, "status")
        if status is not None and status not in RUN_STATUSES:
            raise ApiError(400, f"status={status!r} is not one of {', '.join(RUN_STATUSES)}")
        big = 2**63 - 1
        limit = _int_param(request, "limit", 50, 1, MAX_LIMIT) or 50
        offset = _int_param(request, "offset", 0, 0, big) or 0
        q = RunQuery(
            workflow=_str_param(request, "workflow"),
            status=status,
            owner=_str_param(request, "owner"),
            since_ns=_int_param(request, "since_ns", None, 0, big),
            until_ns=_int_param(request, "until_ns", None, 0, big),
            limit=limit,
            offset=offset,
        )
        store = self.store_for(request)
        runs = store.list_runs(q)
        total = store.count_runs(q)
        next_offset = offset + len(runs) if offset + len(runs) < total else None
        return json_response(
            {
                "runs": [r.to_dict() for r in runs],
                "total": total,
                "limit": limit,
                "offset": offset,
                "next_offset": next_offset,
            }
        )

    def get_run(self, request: Request) -> Response:
        rec = self.store_for(request).get_record(self._run_id(request))
        return json_response(
            {
                "run": rec.run.to_dict(),
                "steps": [s.to_dict() for s in rec.steps],
                "edges": [e.to_dict() for e in rec.edges],
                "findings": [f.to_dict() for f in rec.findings],
            }
        )

    def lineage(self, request: Request) -> Response:
        rec = self.store_for(request).get_record(self._run_id(request))
        nodes = [
            {
                "id": s.id,
                "index": s.index,
                "name": s.name,
                "kind": s.kind,
                "agent": s.agent,
                "status": s.status,
                "parent_id": s.parent_id,
            }
            for s in rec.steps
        ]
        edges = [
            {
                "source": s.parent_id,
                "target": s.id,
                "kind": "parent",
                "evidence": "parent",
                "detail": None,
            }
            for s in rec.steps
            if s.parent_id
        ]
        edges += [
            {
                "source": e.source,
                "target": e.target,
                "kind": e.kind,
                "evidence": e.evidence,
                "detail": e.detail,
            }
            for e in rec.edges
        ]
        return json_response({"run_id": rec.run.id, "nodes": nodes, "edges": edges})

    def findings(self, request: Request) -> Response:
        run_id = self._run_id(request)
        return json_response(
            {
                "run_id": run_id,
                "findings": [f.to_dict() for f in self.store_for(request).get_findings(run_id)],
            }
        )

    def attribution(self, request: Request) -> Response:
        """What ``flightlog why RUN --json`` prints: ``Attribution.to_dict()``, with
        ``counterfactual`` when ``why --confirm`` recorded a replay's outcome."""
        from flightlog.forensics import why
        from flightlog.forensics.counterfactual import latest_confirmation

        store = self.store_for(request)
        att = why(store, self._run_id(request))
        counterfactual = latest_confirmation(store, att.run_id)  # type: ignore[arg-type]
        return json_response(
            att.to_dict() | ({"counterfactual": counterfactual} if counterfactual else {})
        )

    def payload(self, request: Request) -> Response:
        h = str(request.path_params["hash"]).lower()
        if len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
            raise ApiError(400, f"{h[:80]!r} is not a payload hash (64 hex digits, SHA-256)")
        store = self.store_for(request)
        visible = getattr(store, "payload_visible", None)
        data = store.get_payloads([h]).get(h) if visible is None or visible(h) else None
        if data is None:
            raise ApiError(404, f"no payload with hash {h}")
        return json_response({"hash": h, "value": orjson.loads(data)})

    def workflows(self, request: Request) -> Response:
        return json_response({"workflows": self.store_for(request).workflows()})

    def _reliability(self, request: Request, workflow: str | None) -> Response:
        import time

        from flightlog.reliability import reliability

        big = 2**63 - 1
        days = _int_param(request, "days", 30, 1, 3660) or 30
        until = _int_param(request, "until_ns", None, 0, big)
        until = time.time_ns() if until is None else until
        since = _int_param(request, "since_ns", None, 0, big)
        since = max(0, until - days * 86_400_000_000_000) if since is None else since
        store = self.server_store or self.store_for(request)
        report = reliability(store, since_ns=since, until_ns=until, workflow=workflow)
        return json_response(report.to_dict())

    def reliability(self, request: Request) -> Response:
        return self._reliability(request, _str_param(request, "workflow"))

    def workflow_reliability(self, request: Request) -> Response:
        return self._reliability(request, str(request.path_params["workflow"]))


def guarded(fn: Any) -> Any:
    """Turn ApiError / Flightlog errors into JSON error responses (sync endpoint)."""

    def endpoint(request: Request) -> Response:
        try:
            return fn(request)  # type: ignore[no-any-return]
        except ApiError as exc:
            return error_json(exc.status, exc.message)
        except NotFoundError as exc:
            return error_json(404, str(exc))
        except FlightlogError as exc:
            return error_json(503, str(exc))

    return endpoint
