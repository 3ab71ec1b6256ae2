"""The board report as text: Markdown, HTML (``render``), and a PDF printed from the HTML by
headless Chromium (``pdf``). The data is ``flightlog.reliability.board.board_report``'s; plots
where a picture reads faster, every term explained in one line (the report's ``terms``).
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import tempfile
from html import escape
from pathlib import Path
from typing import Any

from flightlog import _json
from flightlog.errors import ConfigurationError
from flightlog.reliability.charts import pct, share_bars, trend
from flightlog.reliability.figures import DayFigures
from flightlog.reliability.render import money
from flightlog.reliability.stats import Rate, per_thousand


def _day(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%d")


def _dur(ns: float | None) -> str:
    from flightlog._format import duration

    return duration(ns)


def _rate(d: dict[str, Any]) -> Rate:
    return Rate(int(d["successes"]), int(d["trials"]))


def _change(c: float | None) -> str:
    return "–" if c is None else f"{100 * c:+.1f} pts"


def _slo_line(s: dict[str, Any]) -> str:
    slo = s["slo"]
    left = s["budget_remaining"]
    state = {True: "met", False: "NOT met", None: "no data"}[s["met"]]
    fires = ", ".join(f["severity"] for f in s["firing"])
    return (
        f"{slo['name']}: {pct(s['sli'])} against {pct(slo['target'])} ({state}); error budget "
        f"remaining {'–' if left is None else f'{left:.0%}'}"
        + (f"; alerting ({fires})" if fires else "")
    )


def markdown(rep: dict[str, Any]) -> str:
    p = rep["period"]
    out = [
        f"# Reliability report, {_day(p['since_ns'])} – {_day(p['until_ns'])}",
        "",
        f"{len(rep['workflows'])} workflow(s); {len(rep['incidents']['items'])} incident(s); "
        f"{len(rep['drills'])} fire drill(s).",
        "",
        "## Workflows",
        "",
        "| workflow | clean runs | 95% interval | change | failures per 1,000 | SLO |",
        "|---|---|---|---|---|---|",
    ]
    for w in rep["workflows"]:
        r = _rate(w["end_to_end"])
        lo, hi = r.interval
        f = per_thousand(r)
        exp = "–" if f["expected"] is None else f"{f['expected']:.1f} (≤ {f['upper_bound']:.1f})"
        slo = "; ".join(_slo_line(s) for s in w["slos"]) or "none set"
        out.append(
            f"| {w['workflow']} | {pct(r.value)} of {r.trials:,} | {pct(lo)}–{pct(hi)} | "
            f"{_change(w['change'])} | {exp} | {slo} |"
        )
    out += ["", "## Who the failures belong to (root cause, by owner)", ""]
    if rep["root_causes_by_owner"]:
        out += ["| owner | failures | share | cost |", "|---|---|---|---|"]
        for o in rep["root_causes_by_owner"]:
            out.append(
                f"| {o['owner']} | {o['failures']} | {pct(o['share'], 0)} | {money(o['cost'])} |"
            )
    else:
        out.append("No failures in the period.")
    cur = rep["currency"]
    out += [
        "",
        f"Cost of failed runs (recorded model and tool cost): {money(rep['cost_of_failures'])}"
        + (
            f"; configured cost of failures: {money(rep['cost_of_failures_configured'])} {cur}"
            if rep["cost_of_failures_configured"]
            else ""
        ),
        "",
        "## Incidents",
        "",
    ]
    inc = rep["incidents"]
    out.append(
        f"MTTD {_dur(inc['mttd_ns'])} · MTTA {_dur(inc['mtta_ns'])} · MTTR {_dur(inc['mttr_ns'])}"
    )
    if inc["items"]:
        out += [
            "",
            "| # | workflow | kind | root cause | owner | runs | state | detect | ack | resolve |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for i in inc["items"]:
            out.append(
                f"| {i['id']} | {i['workflow']} | {i['kind']} | {i['root_cause_step']} | "
                f"{i['owner']} | {i['runs']} | {i['status']} | {_dur(i['detect_ns'])} | "
                f"{_dur(i['acknowledge_ns'])} | {_dur(i['resolve_ns'])} |"
            )
    out += ["", "## Fire drills", ""]
    if rep["drills"]:
        out += [
            "| drill | when | result | faults | detected | attributed | paged |",
            "|---|---|---|---|---|---|---|",
        ]
        for d in rep["drills"]:
            out.append(
                f"| {d['name']} | {_day(d['started_ns'])} | {'passed' if d['passed'] else 'FAILED'}"
                f" | {d['faults_injected']} | {pct(d['detection_rate'], 0)} | "
                f"{pct(d['attribution_accuracy'], 0)} | {pct(d['paged_rate'], 0)} |"
            )
    else:
        out.append(
            "No fire drill in the period: run `flightlog drill DRILL.toml` (docs/drills.md)."
        )
    a = rep["audit"]
    out += ["", "## Audit ledger", ""]
    out.append(_audit_line(a))
    out += ["", "## What the terms mean", ""]
    out += [f"- **{k}**: {v}" for k, v in rep["terms"].items()]
    return "\n".join(out) + "\n"


def _audit_line(a: dict[str, Any]) -> str:
    if not a.get("enabled"):
        return "The audit ledger is off for this store."
    last = a["last_checkpoint"]
    ver = a["last_verification"]
    return (
        f"{a['entries']:,} entries; last signed checkpoint: "
        + (f"size {last['size']:,} on {_day(last['created_ns'])}" if last else "none yet")
        + "; last verification: "
        + (
            f"{'passed' if ver['ok'] else 'FAILED'} on {_day(ver['at_ns'])}"
            if ver
            else "never (run `flightlog audit verify`)"
        )
        + "."
    )


STYLE = """
body{font:15px/1.5 system-ui,sans-serif;color:#1d2330;margin:0 auto;max-width:1180px;
padding:20px 28px}h1{font-size:24px}h2{font-size:19px;margin-top:30px;border-bottom:1px solid
#e3e6eb;padding-bottom:4px}h3{font-size:16px;margin:18px 0 6px}table{border-collapse:collapse;
width:100%;margin:8px 0}td,th{border-bottom:1px solid #e3e6eb;padding:5px 8px;text-align:left;
vertical-align:top}th{background:#eef0f4}.num{text-align:right;font-variant-numeric:
tabular-nums}.muted{color:#5f6675}.bad{color:#9b1111;font-weight:600}.ok{color:#11602c;
font-weight:600}svg{max-width:100%;height:auto;border:1px solid #e3e6eb;background:#fff}
svg text{font:12px system-ui,sans-serif}dt{font-weight:600}dd{margin:0 0 6px 18px}
.kpis{display:flex;gap:14px;flex-wrap:wrap}.kpi{border:1px solid #e3e6eb;padding:10px 14px;
min-width:170px}.kpi b{display:block;font-size:24px}
@media print{body{max-width:none;padding:0}h2{break-after:avoid}svg{break-inside:avoid}}
"""


def html(rep: dict[str, Any]) -> str:
    def e(v: Any) -> str:
        return escape("" if v is None else str(v), quote=True)

    p = rep["period"]
    inc = rep["incidents"]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>Reliability report {e(_day(p['since_ns']))} – {e(_day(p['until_ns']))}</title>"
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Reliability report, {e(_day(p['since_ns']))} – {e(_day(p['until_ns']))}</h1>",
        "<div class='kpis'>"
        f"<div class='kpi'><b>{len(rep['workflows'])}</b>workflows</div>"
        f"<div class='kpi'><b>{len(inc['items'])}</b>incidents</div>"
        f"<div class='kpi'><b>{e(_dur(inc['mttr_ns']))}</b>MTTR (time to resolve)</div>"
        f"<div class='kpi'><b>{e(money(rep['cost_of_failures']))}</b>cost of failed runs</div>"
        f"<div class='kpi'><b>{len(rep['drills'])}</b>fire drills</div></div>",
        "<h2>Workflows</h2>",
    ]
    for w in rep["workflows"]:
        r = _rate(w["end_to_end"])
        lo, hi = r.interval
        f = per_thousand(r)
        days = [
            DayFigures(d["day_ns"], Rate(d["successes"], d["trials"]), d["degraded"])
            for d in w["days"]
        ]
        parts.append(
            f"<h3>{e(w['workflow'])}</h3><p><b>{e(pct(r.value))}</b> of {r.trials:,} runs "
            f"were clean (95% interval {e(pct(lo))}–{e(pct(hi))}); change from the period "
            f"before: {e(_change(w['change']))}. "
            + (
                ""
                if f["expected"] is None
                else f"Expect {f['expected']:.1f} failures per 1,000 runs (at most "
                f"{f['upper_bound']:.1f})."
            )
            + "</p>"
        )
        for s in w["slos"]:
            cls = "ok" if s["met"] else "bad"
            parts.append(f"<p class='{cls}'>SLO {e(_slo_line(s))}</p>")
        parts.append(trend(days, width=1000, height=200))
    parts.append("<h2>Who the failures belong to</h2>")
    rows = rep["root_causes_by_owner"]
    if rows:
        parts.append(
            "<p class='muted'>Failures by the owner of the root-cause step (where the fault "
            "started, not where it surfaced).</p>"
            + share_bars(
                [
                    (
                        o["owner"],
                        o["share"],
                        f"{pct(o['share'], 0)} · {o['failures']} · cost {money(o['cost'])}",
                    )
                    for o in rows
                ],
                width=1000,
            )
        )
    else:
        parts.append("<p>No failures in the period.</p>")
    parts.append("<h2>Incidents</h2>")
    parts.append(
        f"<p>MTTD {e(_dur(inc['mttd_ns']))} · MTTA {e(_dur(inc['mtta_ns']))} · "
        f"MTTR {e(_dur(inc['mttr_ns']))}</p>"
    )
    if inc["items"]:
        body = "".join(
            f"<tr><td>#{i['id']}</td><td>{e(i['workflow'])}</td><td>{e(i['kind'])}</td>"
            f"<td>{e(i['root_cause_step'])}</td><td>{e(i['owner'])}</td>"
            f"<td class='num'>{i['runs']}</td><td>{e(i['status'])}</td>"
            f"<td class='num'>{e(_dur(i['detect_ns']))}</td>"
            f"<td class='num'>{e(_dur(i['acknowledge_ns']))}</td>"
            f"<td class='num'>{e(_dur(i['resolve_ns']))}</td></tr>"
            for i in inc["items"]
        )
        parts.append(
            "<table><tr><th>#</th><th>workflow</th><th>kind</th><th>root cause</th>"
            "<th>owner</th><th>runs</th><th>state</th><th>detect</th><th>acknowledge</th>"
            f"<th>resolve</th></tr>{body}</table>"
        )
    parts.append("<h2>Fire drills</h2>")
    if rep["drills"]:
        body = "".join(
            f"<tr><td>{e(d['name'])}</td><td>{e(_day(d['started_ns']))}</td>"
            f"<td class='{'ok' if d['passed'] else 'bad'}'>"
            f"{'passed' if d['passed'] else 'FAILED'}</td>"
            f"<td class='num'>{d['faults_injected']}</td>"
            f"<td class='num'>{e(pct(d['detection_rate'], 0))}</td>"
            f"<td class='num'>{e(pct(d['attribution_accuracy'], 0))}</td>"
            f"<td class='num'>{e(pct(d['paged_rate'], 0))}</td></tr>"
            for d in rep["drills"]
        )
        parts.append(
            "<table><tr><th>drill</th><th>when</th><th>result</th><th>faults</th>"
            "<th>detected</th><th>attributed</th><th>owner paged</th></tr>" + body + "</table>"
        )
    else:
        parts.append(
            "<p class='bad'>No fire drill in the period: nobody has checked that a failure "
            "would be noticed (<code>flightlog drill</code>).</p>"
        )
    parts.append(f"<h2>Audit ledger</h2><p>{e(_audit_line(rep['audit']))}</p>")
    terms = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in rep["terms"].items())
    parts.append(f"<h2>What the terms mean</h2><dl>{terms}</dl></body></html>")
    return "".join(parts)


def render(rep: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return _json.dumps(rep)
    if fmt == "md":
        return markdown(rep)
    if fmt == "html":
        return html(rep)
    raise ConfigurationError(f"unknown format {fmt!r}; expected md, html, json or pdf")


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def pdf(document: str, out: Path, *, browser: str | None = None, timeout_s: float = 120) -> None:
    """Print ``document`` (HTML) to ``out`` with headless Chromium (``--print-to-pdf``)."""
    exe = browser or find_chromium()
    if exe is None:
        raise ConfigurationError(
            "PDF needs headless Chromium (chromium, chromium-browser or google-chrome on PATH); "
            "install it, or write --format html and print that"
        )
    with tempfile.TemporaryDirectory(prefix="flightlog-pdf-") as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(document, encoding="utf-8")
        proc = subprocess.run(
            [
                exe,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-pdf-header-footer",
                f"--user-data-dir={tmp}/profile",
                f"--print-to-pdf={out.resolve()}",
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    if proc.returncode != 0 or not out.exists() or out.stat().st_size == 0:
        raise ConfigurationError(
            f"Chromium could not print the PDF (exit {proc.returncode}): "
            f"{(proc.stderr or '').strip()[-300:]}"
        )
