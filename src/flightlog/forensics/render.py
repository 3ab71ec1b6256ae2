"""Postmortems as text: Markdown, a self-contained HTML file, or JSON (``render``).

They present the plain dict ``flightlog.forensics.report.postmortem`` gathers. Captured
values (LLM and tool outputs, error messages) are untrusted: the HTML escapes every one of
them, carries no script at all and declares a Content-Security-Policy that forbids scripts,
so markup or a prompt injection in an output is shown as text. Markdown output escapes
HTML-significant characters too, because Markdown is often rendered to HTML by whoever reads
it.
"""

from __future__ import annotations

import html
import re
from typing import Any

_MD_ALWAYS = re.compile(r"([\\`*|])")  # escapes, code spans, emphasis, table cells
_MD_GT = re.compile(r"(?<![-=])>")  # a > that could close a tag (not an arrow: -> =>)
_MD_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")  # not inside a word
_MD_LINK = re.compile(r"\[(?=[^\]]*\][(\[:])")  # a [ that would open a link
_MD_LINE_START = re.compile(r"^(\s*)([#>+=~-])")  # heading, quote, list, rule
_MD_ORDERED = re.compile(r"^(\s*\d+)([.)])")  # an ordered list item


def _md(value: Any) -> str:
    """A captured value as Markdown text that renders as the same text: HTML is made inert
    with entities, every character that would start other markup (a link, emphasis, code, a
    table cell, a heading or list at the start) is backslash-escaped (CommonMark), and
    nothing else, so the file also reads as plain text (``validate_claim``, ``[]``,
    ``a -> b`` stay as they are)."""
    text = ("" if value is None else str(value)).replace("\r", " ").replace("\n", " ")
    # Raw HTML stays inert in any renderer, CommonMark or not: &, < and a closing > become
    # entities (an arrow's > is left alone: it cannot close a tag without a <).
    text = _MD_GT.sub("&gt;", text.replace("&", "&amp;").replace("<", "&lt;"))
    text = _MD_ALWAYS.sub(r"\\\1", text)
    text = _MD_UNDERSCORE.sub(r"\\_", text)
    text = _MD_LINK.sub(r"\\[", text)
    text = _MD_ORDERED.sub(lambda m: m.group(1) + "\\" + m.group(2), text)
    return _MD_LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), text)


def render_markdown(pm: dict[str, Any]) -> str:
    a, r, imp = pm["attribution"], pm["run"], pm["impact"]
    out = [
        f"# {_md(pm['title'])}",
        "",
        f"*Blameless postmortem generated {pm['generated']} by Flightlog.*",
        "",
        "## Summary",
        "",
        _md(pm["summary"]),
        "",
    ]
    out += [
        "## Impact",
        "",
        f"- Run `{r['id']}` of workflow **{_md(r['workflow'])}** (version "
        f"{_md(r['version'] or '-')}) {r['status']} at {r['ended']} after {imp['duration']}.",
        f"- Reason: {_md(imp['reason'] or '-')}",
        f"- Steps completed: {imp['steps_completed']} of {imp['of_steps']}"
        + (
            f"; not reached: {_md(', '.join(imp['steps_not_reached']))}"
            if imp["steps_not_reached"]
            else ""
        ),
        f"- Tokens: {imp['tokens']}; cost: {imp['cost']}",
        f"- Workflow: {_md(imp['workflow_failure_rate'])}",
        "",
    ]
    if a["failed"] and a["failure_point"]:
        fp = a["failure_point"]
        out += [
            "## Failure point",
            "",
            f"Step {fp['index']} of {a['of_steps']}: **{_md(fp['name'])}** (agent "
            f"{_md(fp['agent'] or '-')}, owner {_md(fp['owner'] or '-')}).",
            "",
        ]
    if a["root_cause"]:
        rc = a["root_cause"]
        label = "hypothesis" if a["hypothesis"] else "attribution"
        out += [
            "## Root cause",
            "",
            f"Step {rc['index']}: **{_md(rc['name'])}** (agent {_md(rc['agent'] or '-')}, "
            f"kind {_md(rc['kind'])}, owner {_md(rc['owner'] or '-')}).",
            "",
            f"Confidence **{a['confidence']:.2f}** ({label}); method: {_md(a['method'])}.",
            "",
            "Evidence:",
            "",
        ]
        out += [f"- {_md(e)}" for e in a["evidence"]]
        if a["alternatives"]:
            out += [
                "",
                "Alternatives considered:",
                "",
                "| score | step | reason |",
                "|---:|---|---|",
            ]
            for alt in a["alternatives"]:
                s = alt["step"]
                out.append(
                    f"| {alt['score']:.2f} | {s['index']} {_md(s['name'])} | {_md(alt['reason'])} |"
                )
        out.append("")
    if pm["chain"]:
        out += ["## Causal chain", ""]
        for i, c in enumerate(pm["chain"], 1):
            detail = c["error"] or c["output"] or ""
            out.append(
                f"{i}. step {c['index']} **{_md(c['name'])}** ({_md(c['agent'] or '-')})"
                f": `{_md(detail)}`"
                if detail
                else f"{i}. step {c['index']} **{_md(c['name'])}** ({_md(c['agent'] or '-')})"
            )
        out.append("")
    out += [
        "## Timeline",
        "",
        "| # | +ms | step | kind | agent | duration | status | notes |",
        "|---:|---:|---|---|---|---|---|---|",
    ]
    for t in pm["timeline"]:
        notes = "; ".join(([t["role"].upper()] if t["role"] else []) + t["findings"])
        out.append(
            f"| {t['index']} | {t['offset_ms']} | {_md(t['name'])} | {_md(t['kind'])} | "
            f"{_md(t['agent'] or '-')} | {t['duration']} | {t['status']} | {_md(notes)} |"
        )
    o = pm["owners"]
    out += [
        "",
        "## Owners",
        "",
        f"- Root-cause step: {_md(o['root_cause_step'])}",
        f"- Failure-point step: {_md(o['failure_point_step'])}",
        f"- Workflow: {_md(o['workflow'])}",
        "",
    ]
    out += ["## Similar earlier failures", ""]
    if pm["similar_failures"]:
        for s in pm["similar_failures"]:
            rc = s["root_cause"]
            same = " (same root cause)" if s["same_root_cause"] else ""
            where = f"step {rc['index']} {_md(rc['name'])}" if rc else "no attribution"
            out.append(
                f"- {s['started']} run `{s['run_id'][:12]}`: {where}{same} — "
                f"{_md(s['reason'] or '-')}"
            )
    else:
        out.append("None recorded before this run.")
    out += ["", "## Action items", ""]
    out += [f"- [ ] {_md(item)}" for item in pm["action_items"]] or ["None."]
    out.append("")
    return "\n".join(out)


# -- HTML ------------------------------------------------------------------------------------

_CSS = """
body{font:15px/1.5 system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#1d2330}
h1{font-size:1.6em}h2{border-bottom:1px solid #dde;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;width:100%;font-size:13px}
td,th{border:1px solid #dde;padding:4px 6px;vertical-align:top;text-align:left}
th{background:#f3f4f8}
code,pre{font:12px ui-monospace,monospace;background:#f5f5f7;padding:1px 4px;
white-space:pre-wrap;word-break:break-word}
.summary{font-size:1.1em;background:#fff7e6;border-left:4px solid #f0a020;padding:.6em 1em}
.rc{background:#fdecea}.fp{background:#fff4e0}.hyp{color:#a05a00;font-weight:bold}
.meta{color:#667}
"""


def _h(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def render_html(pm: dict[str, Any]) -> str:
    """One self-contained HTML document; every captured value escaped; no scripts."""
    a, r, imp, o = pm["attribution"], pm["run"], pm["impact"], pm["owners"]
    p: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:; script-src 'none'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_h(pm['title'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_h(pm['title'])}</h1>",
        f'<p class="meta">Blameless postmortem generated {_h(pm["generated"])} by Flightlog.</p>',
        "<h2>Summary</h2>",
        f'<p class="summary">{_h(pm["summary"])}</p>',
        "<h2>Impact</h2><ul>",
        f"<li>Run <code>{_h(r['id'])}</code> of workflow <b>{_h(r['workflow'])}</b> (version "
        f"{_h(r['version'] or '-')}) {_h(r['status'])} at {_h(r['ended'])} after "
        f"{_h(imp['duration'])}.</li>",
        f"<li>Reason: {_h(imp['reason'] or '-')}</li>",
        f"<li>Steps completed: {_h(imp['steps_completed'])} of {_h(imp['of_steps'])}"
        + (
            f"; not reached: {_h(', '.join(imp['steps_not_reached']))}"
            if imp["steps_not_reached"]
            else ""
        )
        + "</li>",
        f"<li>Tokens: {_h(imp['tokens'])}; cost: {_h(imp['cost'])}</li>",
        f"<li>Workflow: {_h(imp['workflow_failure_rate'])}</li></ul>",
    ]
    if a["failed"] and a["failure_point"]:
        fp = a["failure_point"]
        p += [
            "<h2>Failure point</h2>",
            f"<p>Step {_h(fp['index'])} of {_h(a['of_steps'])}: <b>{_h(fp['name'])}</b> "
            f"(agent {_h(fp['agent'] or '-')}, owner {_h(fp['owner'] or '-')}).</p>",
        ]
    if a["root_cause"]:
        rc = a["root_cause"]
        label = '<span class="hyp">hypothesis</span>' if a["hypothesis"] else "attribution"
        p += [
            "<h2>Root cause</h2>",
            f"<p>Step {_h(rc['index'])}: <b>{_h(rc['name'])}</b> (agent "
            f"{_h(rc['agent'] or '-')}, kind {_h(rc['kind'])}, owner "
            f"{_h(rc['owner'] or '-')}).</p>",
            f"<p>Confidence <b>{a['confidence']:.2f}</b> ({label}); method: {_h(a['method'])}.</p>",
            "<p>Evidence:</p><ul>",
        ]
        p += [f"<li>{_h(e)}</li>" for e in a["evidence"]]
        p.append("</ul>")
        if a["alternatives"]:
            p.append(
                "<p>Alternatives considered:</p><table><tr><th>score</th><th>step</th>"
                "<th>reason</th></tr>"
            )
            for alt in a["alternatives"]:
                s = alt["step"]
                p.append(
                    f"<tr><td>{alt['score']:.2f}</td><td>{_h(s['index'])} "
                    f"{_h(s['name'])}</td><td>{_h(alt['reason'])}</td></tr>"
                )
            p.append("</table>")
    if pm["chain"]:
        p.append("<h2>Causal chain</h2><ol>")
        for c in pm["chain"]:
            detail = c["error"] or c["output"]
            p.append(
                f"<li>step {_h(c['index'])} <b>{_h(c['name'])}</b> "
                f"({_h(c['agent'] or '-')})"
                + (f": <code>{_h(detail)}</code>" if detail else "")
                + "</li>"
            )
        p.append("</ol>")
    p.append(
        "<h2>Timeline</h2><table><tr><th>#</th><th>+ms</th><th>step</th><th>kind</th>"
        "<th>agent</th><th>duration</th><th>status</th><th>notes</th></tr>"
    )
    for t in pm["timeline"]:
        cls = (
            ' class="rc"'
            if t["role"] == "root cause"
            else (' class="fp"' if t["role"] == "failure point" else "")
        )
        notes = "<br>".join(
            _h(x) for x in ([t["role"].upper()] if t["role"] else []) + t["findings"]
        )
        p.append(
            f"<tr{cls}><td>{_h(t['index'])}</td><td>{_h(t['offset_ms'])}</td>"
            f"<td>{_h(t['name'])}</td><td>{_h(t['kind'])}</td><td>{_h(t['agent'] or '-')}"
            f"</td><td>{_h(t['duration'])}</td><td>{_h(t['status'])}</td>"
            f"<td>{notes}</td></tr>"
        )
    p.append("</table>")
    p += [
        "<h2>Owners</h2><ul>",
        f"<li>Root-cause step: {_h(o['root_cause_step'])}</li>",
        f"<li>Failure-point step: {_h(o['failure_point_step'])}</li>",
        f"<li>Workflow: {_h(o['workflow'])}</li></ul>",
        "<h2>Similar earlier failures</h2>",
    ]
    if pm["similar_failures"]:
        p.append("<ul>")
        for s in pm["similar_failures"]:
            rc = s["root_cause"]
            where = f"step {_h(rc['index'])} {_h(rc['name'])}" if rc else "no attribution"
            same = " (same root cause)" if s["same_root_cause"] else ""
            p.append(
                f"<li>{_h(s['started'])} run <code>{_h(s['run_id'][:12])}</code>: "
                f"{where}{same} — {_h(s['reason'] or '-')}</li>"
            )
        p.append("</ul>")
    else:
        p.append("<p>None recorded before this run.</p>")
    p.append("<h2>Action items</h2><ul>")
    p += [f"<li>{_h(item)}</li>" for item in pm["action_items"]] or ["<li>None.</li>"]
    p.append("</ul></body></html>")
    return "\n".join(p)


def render(pm: dict[str, Any], fmt: str) -> str:
    """``md`` | ``html`` | ``json``."""
    if fmt == "md":
        return render_markdown(pm)
    if fmt == "html":
        return render_html(pm)
    if fmt == "json":
        import orjson

        return orjson.dumps(pm, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    from flightlog.errors import InputError

    raise InputError(f"unknown report format {fmt!r}; expected md, html or json")
