"""The web UI: server-rendered HTML, no build step, no external assets, no script.

Pages: ``/`` runs (filters, paging, "failed at step k of N"), ``/runs/{run}`` (header,
attribution, lineage SVG, step tree with inputs/outputs and findings), ``/runs/{run}/report``
(the postmortem), ``/incidents``, ``/incidents/{id}``, ``/audit`` and ``/reliability``
(rates, trend and per-step charts as inline SVG). Modules: ``_html``
(shell, escaping, CSP), ``runs``, ``run``, ``lineage`` (the SVG graph), ``ops`` (incidents,
audit). See docs/ui.md.

Captured content is untrusted: every value is HTML-escaped, payloads are cut to
``PREVIEW`` characters, and every page carries a Content-Security-Policy without scripts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse

from flightlog.server.ui._html import PREVIEW
from flightlog.server.ui.ops import audit_page, incident_page, incidents_page
from flightlog.server.ui.reliability import reliability_page
from flightlog.server.ui.run import report_page, run_page
from flightlog.server.ui.runs import runs_page

if TYPE_CHECKING:
    from flightlog.store.base import Store, StoreReader

__all__ = ["PREVIEW", "Ui"]


class Ui:
    """Page handlers over a read-side store seen from the caller's project (``store_for``,
    a ``ProjectStore`` when the server has API keys); ``writer`` (the server's own store,
    with the audit ledger attached) is used only to read the ledger's status."""

    def __init__(
        self,
        store_for: Callable[[Request], StoreReader],
        writer: Store | None = None,
        server_store: StoreReader | None = None,
    ) -> None:
        self.store_for = store_for
        self.writer = writer
        self.server_store = server_store  # every project's runs: admin-only pages

    async def index(self, request: Request) -> HTMLResponse:
        return await run_in_threadpool(runs_page, self.store_for(request), request)

    async def run(self, request: Request) -> HTMLResponse:
        return await run_in_threadpool(
            run_page, self.store_for(request), str(request.path_params["run_id"])
        )

    async def report(self, request: Request) -> HTMLResponse:
        return await run_in_threadpool(
            report_page, self.store_for(request), str(request.path_params["run_id"])
        )

    async def incidents(self, request: Request) -> HTMLResponse:
        return await run_in_threadpool(incidents_page, self.store_for(request), request)

    async def incident(self, request: Request) -> HTMLResponse:
        return await run_in_threadpool(
            incident_page, self.store_for(request), str(request.path_params["incident_id"])
        )

    async def audit(self, request: Request) -> HTMLResponse:
        return await run_in_threadpool(audit_page, self.writer, self.store_for(request))

    async def reliability(self, request: Request) -> HTMLResponse:
        # Server-wide figures (every project's runs): the guard lets only admin keys here.
        store = self.server_store or self.store_for(request)
        return await run_in_threadpool(reliability_page, store, request)
