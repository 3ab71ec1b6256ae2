"""``GET /runs/{run}``: header, attribution (failed runs), lineage graph, step tree with
inputs/outputs and findings; ``GET /runs/{run}/report``: the HTML postmortem."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from starlette.responses import HTMLResponse

from flightlog.errors import NotFoundError
from flightlog.ledger.redact import redacted_runs
from flightlog.model import FAULT_STATUSES
from flightlog.server.ui._html import (
    HEADERS,
    PREVIEW,
    duration,
    e,
    error_page,
    page,
    pill,
    q,
    when,
)
from flightlog.server.ui.lineage import depths, lineage_svg

if TYPE_CHECKING:
    from flightlog.store.base import StoreReader

MAX_STEPS = 1000  # step rows on one page (the JSON API has all of them)


def pretty(raw: bytes | None, hash_: str) -> str:
    """A payload as indented JSON, escaped, cut to ``PREVIEW`` characters."""
    if raw is None:
        return "<span class='muted'>(not stored)</span>"
    try:
        text = orjson.dumps(orjson.loads(raw), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        text = raw.decode("utf-8", errors="replace")
    more = ""
    if len(text) > PREVIEW:
        more = (
            f"<span class='muted'>… {len(text) - PREVIEW:,} more characters: "
            f"<a href='/api/v1/payloads/{q(hash_)}'>full value</a></span>"
        )
        text = text[:PREVIEW]
    return f"<pre>{e(text)}</pre>{more}"


def attribution_panel(att: Any) -> str:
    weak = att.hypothesis
    label = "hypothesis" if weak else "attribution"
    parts = [
        f"<div class='panel{' hyp' if weak else ''}'><h2 style='margin-top:0'>Why it "
        f"failed <span class='pill {'warn' if weak else 'bad'}'>{label}</span></h2>",
        f"<p><b>{e(att.summary)}</b></p>",
    ]
    if att.failure_point:
        fp = att.failure_point
        parts.append(
            f"<p>Failure point: <a href='#step-{fp.index}'>step {fp.index} of "
            f"{att.of_steps}</a> <b>{e(fp.name)}</b> (agent {e(fp.agent or '-')}, "
            f"owner {e(fp.owner or '-')})</p>"
        )
    if att.root_cause:
        rc = att.root_cause
        parts.append(
            f"<p>Root cause: <a href='#step-{rc.index}'>step {rc.index}</a> "
            f"<b class='rootcause'>{e(rc.name)}</b> (kind {e(rc.kind or '-')}, agent "
            f"{e(rc.agent or '-')}, owner {e(rc.owner or '-')}) · confidence "
            f"<b>{att.confidence:.2f}</b>{' (hypothesis: weak evidence)' if weak else ''}"
            f" · method {e(att.method)}</p>"
        )
    if att.evidence:
        parts.append(
            "<p>Evidence:</p><ul>"
            + "".join(f"<li>{e(x)}</li>" for x in att.evidence[:30])
            + "</ul>"
        )
    if att.chain:
        parts.append(
            "<p>Causal chain: "
            + " → ".join(f"<a href='#step-{s.index}'>{s.index} {e(s.name)}</a>" for s in att.chain)
            + "</p>"
        )
    if att.alternatives:
        rows = "".join(
            f"<tr><td class='num'>{float(a.get('score') or 0):.2f}</td><td>"
            f"{e((a.get('step') or {}).get('index'))} {e((a.get('step') or {}).get('name'))}"
            f"</td><td>{'yes' if a.get('on_chain') else ''}</td><td>{e(a.get('reason'))}</td>"
            "</tr>"
            for a in att.alternatives[:10]
        )
        parts.append(
            "<p>Alternatives considered (evidence score; the root cause is the earliest step "
            "on the chain with strong evidence, not the highest score):</p>"
            "<table><tr><th>score</th><th>step</th>"
            f"<th>on chain</th><th>reason</th></tr>{rows}</table>"
        )
    parts.append("</div>")
    return "".join(parts)


def run_page(store: StoreReader, prefix: str) -> HTMLResponse:
    try:
        run_id = store.resolve_run_id(prefix)
        from flightlog.respond.owners import with_owners

        rec = with_owners(store.get_record(run_id))
    except NotFoundError as exc:
        return error_page(404, str(exc))
    run = rec.run
    steps = sorted(rec.steps, key=lambda s: s.index)
    att = None
    att_html = ""
    if run.status in FAULT_STATUSES:
        from flightlog.forensics import why

        try:
            att = why(store, run.id)
            att_html = attribution_panel(att)
        except Exception as exc:  # an attribution problem must not hide the run
            att_html = (
                f"<div class='panel hyp'>Attribution unavailable: "
                f"{e(type(exc).__name__)}: {e(exc)}</div>"
            )
    rc_id = att.root_cause.id if att and att.root_cause else None
    fp_id = att.failure_point.id if att and att.failure_point else None

    shown = steps[:MAX_STEPS]
    hashes = [h for s in shown for h in (s.input_hash, s.output_hash) if h]
    payloads = store.get_payloads(hashes)
    redacted = bool(redacted_runs(store, [rec.run.id]))  # values erased by `audit redact`
    findings: dict[str | None, list[Any]] = {}
    for f in rec.findings:
        findings.setdefault(f.step_id, []).append(f)
    depth = depths(shown)
    tokens = sum((s.input_tokens or 0) + (s.output_tokens or 0) for s in steps)
    cost = sum(s.cost or 0.0 for s in steps)

    def finding_list(items: list[Any]) -> str:
        return (
            "<ul>"
            + "".join(
                f"<li>{pill(f.severity)} <b>{e(f.detector)}</b>: {e(f.message[:1000])}</li>"
                for f in items[:50]
            )
            + "</ul>"
        )

    rows = []
    for s in shown:
        cls = " class='rc'" if s.id == rc_id else " class='fp'" if s.id == fp_id else ""
        role = (" <span class='pill warn'>root cause</span>" if s.id == rc_id else "") + (
            " <span class='pill bad'>failure point</span>" if s.id == fp_id else ""
        )
        tok = (
            ""
            if s.input_tokens is None and s.output_tokens is None
            else f"{s.input_tokens or 0} / {s.output_tokens or 0}"
        )
        pad = min(depth[s.id], 12) * 16
        rows.append(
            f"<tr id='step-{s.index}'{cls}><td class='num'>{s.index}</td>"
            f"<td style='padding-left:{pad + 8}px'>{e(s.name)}{role}</td><td>{e(s.kind)}</td>"
            f"<td>{e(s.agent or '')}</td><td>{e(s.owner or '')}</td><td>{pill(s.status)}</td>"
            f"<td class='num'>{e(duration(s.duration_ns))}</td><td>{e(s.model or '')}</td>"
            f"<td class='num'>{e(tok)}</td>"
            f"<td class='num'>{'' if s.cost is None else e(f'{s.cost:.6f}')}</td></tr>"
        )
        detail = []
        if s.error:
            detail.append(f"<p><b>error</b> {e(s.error.type)}: {e(s.error.message[:2000])}</p>")
        if s.id in findings:
            detail.append(finding_list(findings[s.id]))
        io = []
        if s.input_hash:
            io.append(f"<b>input</b>{pretty(payloads.get(s.input_hash), s.input_hash)}")
        elif redacted:
            io.append("<b>input</b><pre>[redacted]</pre>")
        if s.output_hash:
            io.append(f"<b>output</b>{pretty(payloads.get(s.output_hash), s.output_hash)}")
        elif redacted:
            io.append("<b>output</b><pre>[redacted]</pre>")
        if s.error and s.error.traceback:
            io.append(f"<b>traceback</b><pre>{e(s.error.traceback[-PREVIEW:])}</pre>")
        if s.attributes:
            attrs = orjson.dumps(s.attributes, option=orjson.OPT_INDENT_2, default=str).decode()
            io.append(f"<b>attributes</b><pre>{e(attrs[:PREVIEW])}</pre>")
        if io:
            what = (
                " · ".join(w for w, h in (("input", s.input_hash), ("output", s.output_hash)) if h)
                or "details"
            )
            detail.append(f"<details><summary>{what}</summary>{''.join(io)}</details>")
        if detail:
            rows.append(
                f"<tr{cls}><td></td><td colspan='9' style='padding-left:{pad + 8}px'>"
                f"{''.join(detail)}</td></tr>"
            )
    more = (
        f"<p class='muted'>Showing the first {MAX_STEPS} of {len(steps)} steps; the JSON "
        "API has all of them.</p>"
        if len(steps) > MAX_STEPS
        else ""
    )
    if fp_id is not None and len(steps) <= MAX_STEPS:
        from flightlog.forensics.report import steps_not_reached

        first = max((s.index for s in steps), default=0) + 1
        rows += [
            f"<tr class='unreached'><td>{first + k}</td><td>{e(name)}</td>"
            "<td colspan='8' class='muted'>not reached: the run failed before this step "
            "(it runs in the workflow's successful runs)</td></tr>"
            for k, name in enumerate(steps_not_reached(store, rec))
        ]
    run_findings = findings.get(None, [])
    rid = q(run.id)
    from flightlog.forensics.transcripts import is_conversation

    conversation = is_conversation(run)
    meta = [
        f"<span>{pill(run.status)}</span>",
        "<span>timing <b>unknown</b> (an imported conversation: order only)</span>"
        if conversation
        else f"<span>duration <b>{e(duration(run.duration_ns))}</b></span>",
        f"<span>owner <b>{e(run.owner or 'unowned')}</b></span>",
        f"<span>started {e(when(run.started_ns))} UTC</span>",
        f"<span>{len(steps)} steps</span>",
    ]
    if conversation:
        meta.pop(3)  # an imported transcript's start time is not known
    if run.version:
        meta.append(f"<span>version {e(run.version)}</span>")
    if run.service:
        meta.append(f"<span>service {e(run.service)}</span>")
    if tokens:
        meta.append(f"<span>{tokens:,} tokens</span>")
    if cost:
        meta.append(f"<span>cost {cost:.4f}</span>")
    meta.append(f"<span>source {e(run.source)}</span>")
    reason = f"<p>Reason: {e(run.reason[:2000])}</p>" if run.reason else ""
    if run.error:
        reason += f"<p>Error: {e(run.error.type)}: {e(run.error.message[:2000])}</p>"
    steps_html = (
        "<h2>Steps</h2><table><tr><th>#</th><th>name</th><th>kind</th><th>agent</th>"
        "<th>owner</th><th>status</th><th>duration</th><th>model</th><th>tokens in/out</th>"
        f"<th>cost</th></tr>{''.join(rows)}</table>{more}"
    )
    if conversation:
        from flightlog.server.ui.conversation import messages_table

        steps_html = messages_table(shown, payloads, rc_id, fp_id) + more
    body = (
        f"<p><a href='/'>← runs</a></p><h1>{e(run.workflow)} "
        f"<span class='mono muted'>{e(run.id)}</span></h1>"
        f"<p class='meta'>{''.join(meta)}</p>{reason}"
        f"<p>Postmortem: <a href='/runs/{rid}/report'>report</a> · JSON: "
        f"<a href='/api/v1/runs/{rid}'>run</a>, <a href='/api/v1/runs/{rid}/lineage'>lineage</a>,"
        f" <a href='/api/v1/runs/{rid}/findings'>findings</a></p>"
        f"{att_html}<h2>Lineage</h2>"
        f"{lineage_svg(steps, rec.edges, root_cause=rc_id, failure_point=fp_id)}"
        f"{steps_html}"
        + (f"<h2>Run findings</h2>{finding_list(run_findings)}" if run_findings else "")
    )
    return page(f"{run.workflow} {run.id[:12]}", body, active="runs")


def report_page(store: StoreReader, prefix: str) -> HTMLResponse:
    """The blameless postmortem (``flightlog report RUN --format html``), as served HTML."""
    from flightlog.forensics.report import postmortem, render_html

    try:
        pm = postmortem(store, prefix)
    except NotFoundError as exc:
        return error_page(404, str(exc))
    return HTMLResponse(render_html(pm), headers=HEADERS)
