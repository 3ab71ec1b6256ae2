"""``GET /reliability``: rates with intervals, the trend per day and per-step bars (inline
SVG, no script), for every workflow or one (``?workflow=``), over ``?days=`` (default 30)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import HTMLResponse

from flightlog.server.ui._html import e, error_page, page

if TYPE_CHECKING:
    from flightlog.store.base import StoreReader

DAYS = (1, 7, 30, 90)
EXTRA_STYLE = (
    "<style>table.kpi td{border:1px solid #e3e6eb;vertical-align:top;width:20%}"
    "table.kpi b{font-size:20px}section.wf{margin-bottom:26px}h3{font-size:14px;margin:14px 0 6px}"
    "dt{font-weight:600}dd{margin:0 0 6px 16px}</style>"
)


def reliability_page(store: StoreReader, request: Request) -> HTMLResponse:
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
    body = EXTRA_STYLE + form + _slos(store, workflow, until) + html_body(report)
    return page("Reliability", body, active="reliability")


def _slos(store: StoreReader, workflow: str | None, now_ns: int) -> str:
    """SLO status from the server's flightlog.toml (nothing when none is configured)."""
    from flightlog.errors import ConfigurationError
    from flightlog.reliability.charts import pct
    from flightlog.reliability.settings import load_reliability_settings
    from flightlog.reliability.slo import evaluate_all

    try:
        slos = load_reliability_settings().slos
    except ConfigurationError as exc:
        return f"<div class='panel'>SLOs not shown: {e(exc)}</div>"
    slos = [s for s in slos if workflow is None or s.workflow == workflow]
    if not slos:
        return ""
    rows = []
    for st in evaluate_all(store, slos, now_ns):
        left = "–" if st.budget_remaining is None else f"{st.budget_remaining:.0%}"
        state = {True: "ok", False: "bad", None: "unk"}[st.met]
        label = {True: "met", False: "not met", None: "no runs"}[st.met]
        fires = ", ".join(f"{f.rule.severity} ({f.rule.label})" for f in st.firing) or "–"
        rows.append(
            f"<tr><td>{e(st.slo.name)}</td><td class='num'>{e(pct(st.sli))}</td>"
            f"<td class='num'>{e(pct(st.slo.target))}</td>"
            f"<td><span class='pill {state}'>{label}</span></td><td class='num'>{e(left)}</td>"
            f"<td>{e(fires)}</td></tr>"
        )
    return (
        "<h2>SLOs</h2><table><tr><th>SLO</th><th>SLI</th><th>target</th><th>state</th>"
        "<th>error budget left</th><th>burn-rate alerts firing</th></tr>"
        + "".join(rows)
        + "</table>"
    )
