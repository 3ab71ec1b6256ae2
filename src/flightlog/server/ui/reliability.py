"""``GET /reliability``: rates with intervals, the trend per day and per-step bars (inline
SVG, no script), for every workflow or one (``?workflow=``), over ``?days=`` (default 30)."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse

from flightlog.server.ui._html import e, error_page, page

DAYS = (1, 7, 30, 90)
EXTRA_STYLE = (
    "<style>table.kpi td{border:1px solid #e3e6eb;vertical-align:top;width:20%}"
    "table.kpi b{font-size:20px}section.wf{margin-bottom:26px}h3{font-size:14px;margin:14px 0 6px}"
    "dt{font-weight:600}dd{margin:0 0 6px 16px}</style>"
)


def reliability_page(store: Any, request: Request) -> HTMLResponse:
    from flightlog.reliability import reliability
    from flightlog.reliability.render import html_body

    workflow = request.query_params.get("workflow") or None
    raw_days = request.query_params.get("days") or "30"
    try:
        days = int(raw_days)
    except ValueError:
        return error_page(400, f"days={raw_days[:40]!r} is not a whole number of days")
    if not 1 <= days <= 3660:
        return error_page(400, f"days={days} is out of range [1, 3660]")
    until = time.time_ns()
    report = reliability(
        store, since_ns=until - days * 86_400_000_000_000, until_ns=until, workflow=workflow
    )
    names = store.workflows()
    options = "".join(
        f"<option{' selected' if n == workflow else ''}>{e(n)}</option>" for n in names
    )
    day_opts = "".join(
        f"<option value='{d}'{' selected' if d == days else ''}>{d} days</option>" for d in DAYS
    )
    form = (
        "<form class='filters' method='get' action='/reliability'><label>workflow"
        f"<select name='workflow'><option value=''>every workflow</option>{options}</select>"
        f"</label><label>window<select name='days'>{day_opts}</select></label>"
        "<button type='submit'>Show</button></form>"
    )
    body = EXTRA_STYLE + form + html_body(report)
    return page("Reliability", body, active="reliability")
