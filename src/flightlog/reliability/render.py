"""Reliability figures as text (the terminal), and as HTML with SVG charts (the web UI's
page, ``flightlog reliability --html`` and the board report). Jargon comes with a one-line
explanation (``GLOSSARY``)."""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any

from flightlog.reliability import ReliabilityReport
from flightlog.reliability.charts import pct, share_bars, step_bars, trend
from flightlog.reliability.figures import PASS_K, Share, WorkflowReliability
from flightlog.reliability.stats import pass_k, per_thousand

GLOSSARY: dict[str, str] = {
    "clean": "a run that succeeded; failed and degraded runs (answered, errors swallowed) "
    "are not clean",
    "95% interval": "the range the true rate lies in with 95% confidence, given how many "
    "runs there were (Wilson score interval)",
    "conditional success": "of the runs that reached a step, the share in which the step "
    "did not fail",
    "product of steps": "what the steps' rates predict for the whole run if steps failed "
    "independently of each other",
    "gap": "measured minus product: positive when one fault breaks several steps of the same "
    "run, negative when runs fail without any step failing",
    "pass^k": "the chance that k runs in a row are all clean",
    "root cause": "the step the stored attribution blames, not the step where the failure surfaced",
}


def _e(v: Any) -> str:
    return escape("" if v is None else str(v), quote=True)


def day(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%d")


def _interval(lo: float, hi: float) -> str:
    return f"{pct(lo)}–{pct(hi)}"


def money(v: float) -> str:
    """An amount: two decimals, more for amounts under 1 (model costs are small)."""
    return _money(v)


def _money(v: float) -> str:
    return f"{v:,.2f}" if abs(v) >= 1 or v == 0 else f"{v:.4f}"


def gap_sentence(wf: WorkflowReliability) -> str:
    g = wf.gap
    if g is None:
        return "no gap: no runs"
    pts = f"{100 * g:+.1f} points"
    if abs(g) < 0.0005:
        return f"gap {pts}: steps fail about independently"
    if g > 0:
        return f"gap {pts}: failures come together (one fault breaks several steps of a run)"
    return f"gap {pts}: runs fail without any step failing"


def _share_line(s: Share, what: str) -> str:
    name = s.name if s.name is not None else "(not attributed)"
    extra = ""
    if what == "step" and s.name is not None:
        extra = f" (agent {s.agent or '-'}, owner {s.owner or '-'})"
    cost = f", cost {_money(s.cost)}" if s.cost else ""
    return f"    {name}{extra}: {pct(s.share, 0)} ({s.failures:,} failure(s){cost})"


def text(report: ReliabilityReport) -> str:
    """The terminal form."""
    out: list[str] = [
        f"Reliability of runs started {day(report.since_ns)} – {day(report.until_ns)} (UTC)"
    ]
    if not report.workflows:
        out.append("  no runs in this window")
    for wf in report.workflows:
        r = wf.end_to_end
        lo, hi = r.interval
        out.append("")
        out.append(f"{wf.workflow}")
        st = ", ".join(f"{n:,} {s}" for s, n in sorted(wf.statuses.items()))
        out.append(f"  runs: {st or 'none'}")
        if not r.trials:
            out.append("  no finished runs in this window: no rates")
            out.extend(f"  note: {n}" for n in wf.notes)
            continue
        out.append(
            f"  end to end: {pct(r.value)} clean ({r.successes:,} of {r.trials:,}), "
            f"95% interval {_interval(lo, hi)}"
        )
        plo, phi = wf.product_interval
        out.append(
            f"  product of steps: {pct(wf.product)} ({_interval(plo, phi)}); {gap_sentence(wf)}"
        )
        pk = "  ".join(f"pass^{k} {pct(p['value'])}" for k in PASS_K for p in [pass_k(r, k)])
        out.append(f"  {pk}")
        f = per_thousand(r)
        out.append(
            f"  failures per 1,000 runs: {f['expected']:.1f} expected, at most "
            f"{f['upper_bound']:.1f} (95%)"
        )
        if wf.steps:
            out.append("  steps (conditional success: of the runs that reached the step):")
            w = max(len(s.name) for s in wf.steps)
            for s in wf.steps:
                slo, shi = s.rate.interval
                out.append(
                    f"    {s.name:<{w}}  {pct(s.rate.value):>7}  {_interval(slo, shi):>15}  "
                    f"reached {s.reached:,}, failed {s.failed:,}"
                )
        if r.failures:
            out.append("  failure share by root cause, owner:")
            out.extend(_share_line(s, "owner") for s in wf.by_owner)
            out.append("  by agent:")
            out.extend(_share_line(s, "agent") for s in wf.by_agent)
            out.append("  by step:")
            out.extend(_share_line(s, "step") for s in wf.by_step)
        cost = (
            f"  cost: {_money(wf.cost_total)} in all runs, "
            f"{_money(wf.cost_of_failures)} in runs that failed"
        )
        if wf.business_cost is not None:
            cost += (
                f"; {r.failures} failure(s) × {_money(wf.cost_per_failure or 0)} = "
                f"{_money(wf.business_cost)}"
            )
        out.append(cost)
        if len(wf.days) > 1:
            out.append(
                "  per day: "
                + "  ".join(f"{day(d.day_ns)[5:]} {pct(d.rate.value, 1)}" for d in wf.days[-7:])
            )
        out.extend(f"  note: {n}" for n in wf.notes)
    return "\n".join(out)


def workflow_html(wf: WorkflowReliability) -> str:
    """One workflow's section: headline figures, the two charts, the tables."""
    r = wf.end_to_end
    lo, hi = r.interval
    parts = [f"<section class='wf'><h2>{_e(wf.workflow)}</h2>"]
    if not r.trials:
        parts.append("<div class='empty'>No finished runs in this window: no rates.</div>")
        parts.extend(f"<p class='muted'>{_e(n)}</p>" for n in wf.notes)
        parts.append("</section>")
        return "".join(parts)
    f = per_thousand(r)
    plo, phi = wf.product_interval
    pks = " · ".join(f"pass^{k} {pct(pass_k(r, k)['value'])}" for k in PASS_K)
    parts.append(
        "<table class='kpi'><tr>"
        f"<td><b>{_e(pct(r.value))}</b><br>clean end to end<br><span class='muted'>"
        f"95%: {_e(_interval(lo, hi))}; {r.successes} of {r.trials} runs</span></td>"
        f"<td><b>{_e(pct(wf.product))}</b><br>product of steps<br><span class='muted'>"
        f"{_e(_interval(plo, phi))}</span></td>"
        f"<td><b>{_e(f'{100 * wf.gap:+.1f}' if wf.gap is not None else '–')} pts</b><br>gap"
        f"<br><span class='muted'>{_e(gap_sentence(wf).split(': ', 1)[-1])}</span></td>"
        f"<td><b>{f['expected']:.1f}</b><br>failures per 1,000 runs<br><span class='muted'>"
        f"at most {f['upper_bound']:.1f} (95%)</span></td>"
        f"<td><b>{_e(_money(wf.cost_of_failures))}</b><br>cost of failed runs"
        + (
            f"<br><span class='muted'>{r.failures} × {_e(_money(wf.cost_per_failure or 0))}"
            f" = {_e(_money(wf.business_cost))} configured</span>"
            if wf.business_cost is not None
            else ""
        )
        + "</td></tr></table>"
        f"<p class='muted'>{_e(pks)}</p>"
    )
    parts.append("<h3>Clean runs per day</h3>" + trend(wf.days))
    parts.append(
        "<h3>Success per step</h3>" + step_bars(wf.steps, measured=r.value, product=wf.product)
    )
    rows = "".join(
        f"<tr><td>{_e(s.name)}</td><td class='num'>{s.reached}</td><td class='num'>{s.failed}"
        f"</td><td class='num'>{_e(pct(s.rate.value))}</td><td class='num'>"
        f"{_e(_interval(*s.rate.interval))}</td><td class='num'>{_e(_money(s.cost_not_clean))}"
        "</td></tr>"
        for s in wf.steps
    )
    parts.append(
        "<table><tr><th>step</th><th>reached</th><th>failed</th><th>conditional success</th>"
        f"<th>95% interval</th><th>cost in failed runs</th></tr>{rows}</table>"
    )
    if r.failures:
        parts.append("<h3>Failure share by root cause</h3>")
        parts.append(
            share_bars(
                [
                    (
                        s.name if s.name is not None else "(not attributed)",
                        s.share,
                        f"{pct(s.share, 0)} · {s.failures} · cost {_money(s.cost)}",
                    )
                    for s in wf.by_owner
                ]
            )
        )
        for title, shares in (("step", wf.by_step), ("agent", wf.by_agent)):
            body = "".join(
                f"<tr><td>{_e(s.name if s.name is not None else '(not attributed)')}</td>"
                + (
                    f"<td>{_e(s.agent or '')}</td><td>{_e(s.owner or '')}</td>"
                    if title == "step"
                    else ""
                )
                + f"<td class='num'>{s.failures}</td><td class='num'>{_e(pct(s.share, 0))}</td>"
                f"<td class='num'>{_e(_money(s.cost))}</td></tr>"
                for s in shares
            )
            head = "<th>agent</th><th>owner</th>" if title == "step" else ""
            parts.append(
                f"<table><tr><th>root-cause {title}</th>{head}<th>failures</th><th>share</th>"
                f"<th>cost</th></tr>{body}</table>"
            )
    parts.extend(f"<p class='muted'>{_e(n)}</p>" for n in wf.notes)
    parts.append("</section>")
    return "".join(parts)


def glossary_html() -> str:
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in GLOSSARY.items())
    return f"<details><summary>What these words mean</summary><dl>{items}</dl></details>"


def html_body(report: ReliabilityReport) -> str:
    head = (
        f"<h1>Reliability</h1><p class='muted'>Runs started {day(report.since_ns)} – "
        f"{day(report.until_ns)} (UTC).</p>" + glossary_html()
    )
    if not report.workflows:
        return head + "<div class='empty'>No runs in this window.</div>"
    return head + "".join(workflow_html(w) for w in report.workflows)


STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:16px 24px;
color:#1d2330}h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid
#e3e6eb}h3{font-size:15px;margin:18px 0 6px}table{border-collapse:collapse;width:100%;
margin:6px 0}td,th{border-bottom:1px solid #e3e6eb;padding:4px 8px;text-align:left}
th{background:#eef0f4}.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#6a7080}table.kpi td{border:1px solid #e3e6eb;vertical-align:top;width:20%}
table.kpi b{font-size:22px}.empty{border:1px dashed #c5cad3;padding:14px}
svg{background:#fff;border:1px solid #e3e6eb;max-width:100%;height:auto}
svg text{font:12px system-ui,sans-serif}dt{font-weight:600}dd{margin:0 0 6px 16px}
"""


def html_document(report: ReliabilityReport, title: str = "Flightlog reliability") -> str:
    """A standalone page (no script, no external asset)."""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>"
        f"{html_body(report)}</body></html>"
    )


def slo_text(statuses: list[Any]) -> str:
    """SLO status lines: SLI against target, budget remaining, what fires."""
    out = ["", "SLOs (error budget = 1 - target; burn rate 1 spends it exactly over the window)"]
    for st in statuses:
        slo = st.slo
        sli = "no runs" if st.sli is None else pct(st.sli)
        left = "–" if st.budget_remaining is None else f"{st.budget_remaining:.0%}"
        state = "met" if st.met else ("no data" if st.met is None else "NOT met")
        fires = ", ".join(f"{f.rule.severity} ({f.rule.label})" for f in st.firing)
        out.append(
            f"  {slo.name}: {sli} against {pct(slo.target)} ({state}); budget remaining {left}"
            + (f"; firing: {fires}" if fires else "")
            + (f"; held back by min_runs: {len(st.guarded)} rule(s)" if st.guarded else "")
        )
    return "\n".join(out)
