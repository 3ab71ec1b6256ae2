"""The ASGI application: routes, and the store and ingestion queue behind them."""

from __future__ import annotations

import contextlib
import gc
import sys
import time
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

if TYPE_CHECKING:
    from flightlog.store.base import StoreReader

from flightlog.access.keys import KeyRing
from flightlog.access.projects import ProjectStore
from flightlog.errors import StoreError
from flightlog.server.admission import Admission
from flightlog.server.api import Api, error_json, guarded, json_response
from flightlog.server.audit_api import AuditApi
from flightlog.server.guard import LOOPBACK_HOSTS, Guard, principal
from flightlog.server.ingest import Ingestor
from flightlog.server.openapi import document
from flightlog.server.otlp import DEFAULT_MAX_BODY, make_endpoint
from flightlog.server.runend_worker import RunEndProcess
from flightlog.server.ui import Ui

STALL_SECONDS = 30.0  # spans waiting this long with no commit: /readyz says not ready


def _otlp_hint(request: Request) -> str:
    """For an exporter POSTing to the wrong path (the endpoint without /v1/traces, or the
    metrics and logs signals), what to configure instead: OTel SDKs log this message."""
    base = str(request.base_url).rstrip("/")
    path = request.url.path
    if request.method == "GET" and path == "/v1/traces":  # opened in a browser
        return f"; exporters POST OTLP here; the web UI is at {base}/"
    if request.method != "POST" or path.startswith("/api/"):
        return ""
    if path in ("/v1/metrics", "/v1/logs"):
        hint = (
            f"; Flightlog receives traces only (POST {base}/v1/traces): turn the other signals' "
            "exporters off (OTEL_METRICS_EXPORTER=none, OTEL_LOGS_EXPORTER=none) or send them "
            "elsewhere"
        )
    else:
        hint = (
            f"; OTLP traces go to POST {base}/v1/traces: set "
            f"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT={base}/v1/traces, or "
            f"OTEL_EXPORTER_OTLP_ENDPOINT={base} (the exporter adds /v1/traces)"
        )
    # Some exporters log only the status line, not this body: say it once per path where
    # whoever runs the server reads (a bounded set: a scan of many paths says little more).
    if path not in _HINTED and len(_HINTED) < 32:
        _HINTED.add(path)
        line = f"refused POST {path[:200]}{hint}"  # the client's bytes: no control characters
        line = "".join(c if c.isprintable() else "?" for c in line)
        print(f"flightlog: {line}", file=sys.stderr, flush=True)
    return hint


_HINTED: set[str] = set()


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("flightlog")
    except Exception:  # pragma: no cover - not installed
        return "0"


def create_app(
    url: str,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    max_pending_spans: int = 50_000,
    max_batch_spans: int = 20_000,
    allowed_hosts: Iterable[str] = (),
    run_end: str | None = None,
) -> Any:
    """The server for the store at ``url`` (opened now, so a bad URL fails here).

    ``allowed_hosts``: names (besides the loopback ones) the ``Host`` header may carry;
    ``"*"`` allows any. ``run_end``: where the run-end pipeline and the periodic work run,
    ``"process"`` (a worker process, ``flightlog.server.runend_worker``) or ``"thread"``;
    default ``[server] run_end``. Returns the Starlette app wrapped in the ``Guard``
    middleware; the Starlette app itself is ``.app``.
    """
    from flightlog import pipeline, privacy
    from flightlog.app import open_store
    from flightlog.errors import ConfigurationError
    from flightlog.server.settings import RUN_END_MODES, load_server_settings
    from flightlog.store import normalize_url

    settings = load_server_settings()  # a bad [server] setting fails at start, naming its line
    mode = run_end or settings.run_end
    if mode not in RUN_END_MODES:
        raise ConfigurationError(f"run_end must be one of {', '.join(RUN_END_MODES)}, got {mode!r}")
    # A bad [privacy] setting fails here, naming its line, before a new store is created.
    scrubber = privacy.load()
    url = normalize_url(url)
    store = open_store(url)
    # Reads go through their own connection (SQLite WAL readers do not wait for the writer).
    reader = open_store(url, readonly=True) if store.dialect == "sqlite" else store
    # Periodic work (alert grouping, paging, escalation, resolution; what capabilities
    # registered with flightlog.pipeline.every) runs on its own clock, not only when runs
    # end: in the run-end worker process, or here.
    worker = (
        RunEndProcess(url, batch_timeout=settings.run_end_batch_timeout)
        if mode == "process"
        else None
    )
    ingestor = Ingestor(
        store,
        max_pending_spans=max_pending_spans,
        max_batch_spans=max_batch_spans,
        privacy=scrubber,
        idle_trace_timeout=settings.idle_trace_timeout,
        run_end=worker,
    )
    clock = pipeline.Clock(store).start() if worker is None else None
    keys = KeyRing(reader)
    projects: dict[str, ProjectStore] = {}

    def store_for(request: Request) -> StoreReader:
        """The reader as the caller's project sees it (every run when there are no keys)."""
        key = principal(request.scope)
        if key is None:
            return reader
        scoped = projects.get(key.project)
        if scoped is None:
            scoped = projects.setdefault(key.project, ProjectStore(reader, key.project))
        return scoped

    api = Api(store_for, reader)
    audit_api = AuditApi(store, store_for)
    ui = Ui(store_for, store, reader)
    spec = document(_version())

    def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    admission = Admission.for_body_limit(max_body)
    progress = {"transactions": -1, "since": time.monotonic()}

    def readyz(request: Request) -> Response:
        problems = []
        if not ingestor.alive():
            problems.append("the ingestion writer is not running")
        if ingestor.pending_spans >= ingestor.max_pending_spans:
            problems.append("the ingestion queue is full")
        if ingestor.stats.transactions != progress["transactions"] or not ingestor.pending_spans:
            progress.update(transactions=ingestor.stats.transactions, since=time.monotonic())
        elif time.monotonic() - progress["since"] > STALL_SECONDS:
            problems.append(
                f"{ingestor.pending_spans} span(s) waiting and nothing committed for "
                f"{time.monotonic() - progress['since']:.0f} s"
            )
        failing = getattr(ingestor.run_end, "failing", None)
        if failing:
            problems.append(failing)
        if admission.held > admission.held_limit - max_body:
            problems.append(
                f"request bodies fill the server's memory budget ({admission.held} of "
                f"{admission.held_limit} bytes held): a largest body would be shed"
            )
        try:
            reader.count_runs()
        except Exception as exc:
            problems.append(f"the store cannot be read: {exc}")
        damage = getattr(reader, "damage", None) or getattr(store, "damage", None)
        if damage:
            problems.append(f"the store is damaged: {damage}")
        if problems:
            return json_response({"status": "not ready", "problems": problems}, 503)
        return json_response(
            {
                "status": "ready",
                "pending_spans": ingestor.pending_spans,
                "body_bytes_held": admission.held,
                "waiting_for_decode": admission.stats.waiting_for_decode,
            }
        )

    def openapi(request: Request) -> Response:
        return json_response(spec)

    def stats(request: Request) -> Response:
        return json_response(
            vars(ingestor.stats)
            | {  # live, not as of the last batch
                "run_end_worker_pid": ingestor.run_end.pid,
                "run_end_worker_restarts": ingestor.run_end.restarts,
                "run_end_worker_failing": ingestor.run_end.failing,
            }
            | {"pending_spans": ingestor.pending_spans}
            | {f"admission_{k}": v for k, v in vars(admission.stats).items()}
            | {"body_bytes_held": admission.held}
        )

    async def not_found(request: Request, exc: Exception) -> Response:
        path = request.url.path
        if (
            request.method in ("GET", "HEAD")
            and "text/html" in request.headers.get("accept", "")
            and not path.startswith(("/api/", "/v1/"))
        ):
            # A browser on a page that does not exist gets a page that says so, with the
            # navigation, rather than a JSON error.
            from flightlog.server.ui._html import error_page

            return error_page(
                404,
                f"there is no page at {path}: the web UI has the runs (/), /incidents, "
                "/reliability and /audit; the REST API is under /api/v1/ (/openapi.json)",
            )
        return error_json(404, f"no route for {request.method} {path}{_otlp_hint(request)}")

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        response = error_json(
            405, f"method {request.method} not allowed on {request.url.path}{_otlp_hint(request)}"
        )
        allow = (getattr(exc, "headers", None) or {}).get("Allow")
        if allow:  # RFC 9110 section 15.5.6: a 405 names the methods the route supports
            response.headers["Allow"] = allow
        return response

    async def server_error(request: Request, exc: Exception) -> Response:
        return error_json(500, f"internal error: {type(exc).__name__}")

    async def store_unavailable(request: Request, exc: Exception) -> Response:
        # A damaged or unreadable store is the server's state, not a bug: 503, saying why.
        return error_json(503, str(exc))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if clock is not None:
                clock.stop()
            ingestor.close()
            if reader is not store:
                reader.close()
            store.close()

    routes = [
        Route("/v1/traces", make_endpoint(ingestor, max_body, reader, admission), methods=["POST"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/openapi.json", openapi),
        Route("/api/v1/runs", guarded(api.list_runs)),
        Route("/api/v1/runs/{run_id}", guarded(api.get_run)),
        Route("/api/v1/runs/{run_id}/lineage", guarded(api.lineage)),
        Route("/api/v1/runs/{run_id}/findings", guarded(api.findings)),
        Route("/api/v1/runs/{run_id}/attribution", guarded(api.attribution)),
        Route("/api/v1/payloads/{hash}", guarded(api.payload)),
        Route("/api/v1/workflows", guarded(api.workflows)),
        Route("/api/v1/reliability", guarded(api.reliability)),
        Route("/api/v1/reliability/{workflow}", guarded(api.workflow_reliability)),
        Route("/api/v1/audit/records/{record:path}", guarded(audit_api.record)),
        Route("/api/v1/ingest/stats", stats),
        Route("/", ui.index),
        Route("/runs/{run_id}", ui.run),
        Route("/runs/{run_id}/report", ui.report),
        Route("/incidents", ui.incidents),
        Route("/incidents/{incident_id}", ui.incident),
        Route("/audit", ui.audit),
        Route("/reliability", ui.reliability),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            404: not_found,
            405: method_not_allowed,
            500: server_error,
            StoreError: store_unavailable,
        },
    )
    app.state.store = store
    app.state.ingestor = ingestor
    app.state.clock = clock
    return Guard(app, keys, LOOPBACK_HOSTS | {h.strip().lower() for h in allowed_hosts})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or name to listen on) reaches only this machine."""
    import ipaddress

    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def serve(
    url: str,
    host: str = "127.0.0.1",
    port: int = 4318,
    *,
    insecure: bool = False,
    allowed_hosts: Iterable[str] = (),
    **options: Any,
) -> None:
    """Run the server until interrupted (uvicorn; see ``flightlog.server.listen``).

    Refuses to listen beyond the loopback while the store has no API key (anyone who can
    reach the port could read and write every run), unless ``insecure``.
    """
    from flightlog.errors import ConfigurationError
    from flightlog.server import listen
    from flightlog.server.ingest import GC_THRESHOLDS, SWITCH_INTERVAL_S

    allowed = {h.strip().lower() for h in allowed_hosts}
    if not is_loopback(host) and host not in ("0.0.0.0", "::", ""):
        allowed.add(host.strip("[]").lower())
    app = create_app(url, allowed_hosts=allowed, **options)
    if not is_loopback(host) and not insecure and not app.keys.enabled():
        raise ConfigurationError(
            f"refusing to serve on {host} without API keys: anyone who can reach the port "
            "could read and rewrite every run. Create keys first (flightlog keys create "
            "NAME --scope ingest|read|admin), or pass --insecure to serve without "
            "authentication"
        )
    # The ingestion writer gets the GIL back sooner after each SQLite call, and the collector
    # leaves what start-up loaded alone and runs less often (server/ingest.py); only while
    # serving: a program that runs serve() keeps its own interval and thresholds afterwards
    before = sys.getswitchinterval()
    thresholds = gc.get_threshold()
    frozen_before = gc.get_freeze_count()  # a program's own freeze is left as it was
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        listen.run(app, host=host, port=port, store_url=url)
    finally:
        sys.setswitchinterval(before)
        gc.set_threshold(*thresholds)
        if not frozen_before:
            gc.unfreeze()
