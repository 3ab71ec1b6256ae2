"""``GET /``: the runs list, filtered by workflow, status and start time, one page at a time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse

from flightlog.model import FAULT_STATUSES, RUN_STATUSES
from flightlog.server.ui._html import duration, e, error_page, page, pill, q, qs, when
from flightlog.store.base import RunQuery

if TYPE_CHECKING:
    from flightlog.store.base import StoreReader

PAGE_SIZES = (25, 50, 100, 200)


class BadFilter(ValueError):
    """A filter value the page cannot use; shown as a 400 page naming it."""


def parse_filters(request: Request) -> dict[str, Any]:
    p = request.query_params
    status = p.get("status") or None
    if status is not None and status not in RUN_STATUSES:
        raise BadFilter(f"status={status!r} is not one of {', '.join(RUN_STATUSES)}")
    since = (p.get("since") or "").strip() or None
    since_ns = None
    if since is not None:
        from flightlog._durations import parse_since

        try:
            since_ns = max(0, min(int(parse_since(since) or 0), 2**63 - 1))
        except Exception:
            raise BadFilter(
                f"since={since!r} is neither a duration (30m, 2h, 7d) nor an "
                "ISO-8601 time (2026-01-31 or 2026-01-31T12:00)"
            ) from None

    def integer(name: str, default: int, lo: int, hi: int) -> int:
        raw = p.get(name) or ""
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise BadFilter(f"{name}={raw!r} is not an integer") from None
        if not lo <= value <= hi:
            raise BadFilter(f"{name}={value} is out of range [{lo}, {hi}]")
        return value

    return {
        "workflow": (p.get("workflow") or "").strip() or None,
        "owner": (p.get("owner") or "").strip() or None,
        "status": status,
        "since": since,
        "since_ns": since_ns,
        "limit": integer("limit", 50, 1, 500),
        "offset": integer("offset", 0, 0, 2**62),
    }


def failed_at(store: StoreReader, runs: list[Any]) -> dict[str, str]:
    """ "step k of N (name)" for each failed run, by the rules ``flightlog why`` uses: k where
    the failure surfaced, N declared, else the workflow's median step count among successful
    runs, else the steps seen (DESIGN.md, "Step k of N")."""
    from flightlog.forensics.attribution import failure_position

    out: dict[str, str] = {}
    for run in runs:
        if run.status not in FAULT_STATUSES:
            continue
        step, n = failure_position(store, store.get_record(run.id))
        if step is None:
            continue
        out[run.id] = f"step {step.index} of {n} ({step.name})"
    return out


def runs_page(store: StoreReader, request: Request) -> HTMLResponse:
    try:
        f = parse_filters(request)
    except BadFilter as exc:
        return error_page(400, str(exc))
    query = RunQuery(
        workflow=f["workflow"],
        status=f["status"],
        since_ns=f["since_ns"],
        owner=f["owner"],
        limit=f["limit"],
        offset=f["offset"],
    )
    runs = store.list_runs(query)
    total = store.count_runs(
        RunQuery(
            workflow=f["workflow"], status=f["status"], since_ns=f["since_ns"], owner=f["owner"]
        )
    )
    where = failed_at(store, runs)

    workflows = store.workflows()
    wf_opts = "".join(
        f"<option value='{e(w)}'{' selected' if w == f['workflow'] else ''}>{e(w)}</option>"
        for w in workflows[:500]
    )
    st_opts = "".join(
        f"<option{' selected' if s == f['status'] else ''}>{e(s)}</option>" for s in RUN_STATUSES
    )
    size_opts = "".join(
        f"<option{' selected' if n == f['limit'] else ''}>{n}</option>" for n in PAGE_SIZES
    )
    form = (
        "<form class='filters' method='get' action='/'>"
        f"<label>workflow<select name='workflow'><option value=''>all</option>{wf_opts}"
        "</select></label>"
        f"<label>status<select name='status'><option value=''>any</option>{st_opts}</select>"
        "</label>"
        f"<label>since<input name='since' size='12' placeholder='24h, 7d, 2026-01-31' "
        f"value='{e(f['since'] or '')}'></label>"
        f"<label>owner<input name='owner' size='12' value='{e(f['owner'] or '')}'></label>"
        f"<label>per page<select name='limit'>{size_opts}</select></label>"
        "<button type='submit'>Filter</button> <a href='/'>clear</a></form>"
    )
    from flightlog.forensics.transcripts import is_conversation

    rows = []
    for r in runs:
        untimed = is_conversation(r)  # an imported transcript: order, not timing
        rows.append(
            f"<tr><td class='mono'><a href='/runs/{q(r.id)}'>{e(r.id[:12])}</a></td>"
            f"<td class='nw'>{e(r.workflow)}</td><td>{pill(r.status)}</td>"
            f"<td>{e(where.get(r.id, ''))}</td>"
            f"<td class='mono nw'>{'unknown' if untimed else e(when(r.started_ns))}</td>"
            f"<td class='num nw'>{'unknown' if untimed else e(duration(r.duration_ns))}</td>"
            f"<td class='nw'>{e(r.owner or '')}</td>"
            f"<td>{e(r.version or '')}</td><td>{e(r.source)}</td>"
            f"<td>{e((r.reason or '')[:160])}</td></tr>"
        )
    keep = {
        "workflow": f["workflow"],
        "status": f["status"],
        "since": f["since"],
        "owner": f["owner"],
        "limit": f["limit"] if f["limit"] != 50 else None,
    }
    pager = []
    if f["offset"] > 0:
        prev = max(0, f["offset"] - f["limit"])
        pager.append(f"<a href='/?{qs(keep | {'offset': prev or None})}'>← newer</a>")
    if f["offset"] + len(runs) < total:
        pager.append(f"<a href='/?{qs(keep | {'offset': f['offset'] + f['limit']})}'>older →</a>")
    shown = f"{f['offset'] + 1}–{f['offset'] + len(runs)} of {total}" if runs else f"0 of {total}"
    table = (
        "<table><tr><th>run</th><th>workflow</th><th>status</th><th>failed at</th>"
        "<th>started (UTC)</th><th>duration</th><th>owner</th><th>version</th><th>source</th>"
        f"<th>reason</th></tr>{''.join(rows)}</table>"
        if rows
        else "<div class='empty'>No runs match. Record some with the SDK "
        "(<code>flightlog.configure(url)</code>), send OTLP to <code>/v1/traces</code>, or "
        "try <code>flightlog demo</code>.</div>"
    )
    api = qs(
        {
            "workflow": f["workflow"],
            "status": f["status"],
            "owner": f["owner"],
            "since_ns": f["since_ns"],
            "limit": f["limit"],
            "offset": f["offset"] or None,
        }
    )
    body = (
        f"<h1>Runs</h1>{form}<p class='muted'>{e(shown)} runs, newest first · JSON: "
        f"<a href='/api/v1/runs?{api}'>/api/v1/runs</a></p>{table}"
        f"<div class='pager'>{''.join(pager)}</div>"
    )
    return page("Runs", body, active="runs")
