"""A minimal read-only web view: the runs list and a run page.

Captured content is untrusted (it can carry prompt injections and markup): every value
is HTML-escaped, payloads are shown as escaped text and cut to ``PREVIEW`` characters, and
the page sends a Content-Security-Policy that forbids scripts.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse

from flightlog.errors import NotFoundError
from flightlog.store.base import RunQuery

PREVIEW = 2000
_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
            "X-Content-Type-Options": "nosniff"}
_STYLE = """body{font:14px system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:4px 8px;
text-align:left;vertical-align:top}pre{white-space:pre-wrap;max-width:60em;margin:0}
.failed,.error{color:#b00}.succeeded,.ok{color:#070}"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _time(ns: int | None) -> str:
    if not ns:
        return "-"
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).strftime(
        "%Y-%m-%d %H:%M:%S")


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<style>{_STYLE}</style></head><body>{body}</body></html>")
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


class Ui:
    def __init__(self, store: Any) -> None:
        self.store = store

    def index(self, request: Request) -> HTMLResponse:
        runs = self.store.list_runs(RunQuery(limit=100))
        rows = "".join(
            f"<tr><td><a href='/runs/{_e(r.id)}'>{_e(r.id[:12])}</a></td>"
            f"<td>{_e(r.workflow)}</td><td class='{_e(r.status)}'>{_e(r.status)}</td>"
            f"<td>{_e(_time(r.started_ns))}</td><td>{_e(r.owner)}</td>"
            f"<td>{_e(r.source)}</td></tr>" for r in runs)
        body = ("<h1>Flightlog</h1><p>Newest 100 runs. JSON: <a href='/api/v1/runs'>"
                "/api/v1/runs</a>, API description: <a href='/openapi.json'>/openapi.json"
                "</a>.</p><table><tr><th>run</th><th>workflow</th><th>status</th>"
                f"<th>started (UTC)</th><th>owner</th><th>source</th></tr>{rows}</table>")
        return _page("Flightlog runs", body)

    def run(self, request: Request) -> HTMLResponse:
        prefix = str(request.path_params["run_id"])
        try:
            rec = self.store.get_record(self.store.resolve_run_id(prefix))
        except NotFoundError as exc:
            return _page("not found", f"<h1>Not found</h1><p>{_e(exc)}</p>", 404)
        hashes = [h for s in rec.steps for h in (s.input_hash, s.output_hash) if h]
        payloads = self.store.get_payloads(hashes)

        def show(h: str | None) -> str:
            if not h or h not in payloads:
                return ""
            text = payloads[h].decode("utf-8", errors="replace")
            cut = text[:PREVIEW] + (" …" if len(text) > PREVIEW else "")
            return f"<pre>{_e(cut)}</pre>"

        run = rec.run
        steps = "".join(
            f"<tr><td>{s.index}</td><td>{_e(s.name)}</td><td>{_e(s.kind)}</td>"
            f"<td>{_e(s.agent)}</td><td class='{_e(s.status)}'>{_e(s.status)}"
            f"{'<br>' + _e(s.error.type + ': ' + s.error.message) if s.error else ''}</td>"
            f"<td>{_e(s.model)}</td><td>{show(s.input_hash)}</td><td>{show(s.output_hash)}</td>"
            "</tr>" for s in rec.steps)
        by_id = {s.id: s for s in rec.steps}

        def label(step_id: str) -> str:
            s = by_id.get(step_id)
            return f"#{s.index} {_e(s.name)}" if s else _e(step_id)

        edges = "".join(f"<li>{label(e.source)} → {label(e.target)} ({_e(e.kind)}, "
                        f"{_e(e.evidence)}{', ' + _e(e.detail) if e.detail else ''})</li>"
                        for e in rec.edges)
        findings = "".join(f"<li>[{_e(f.severity)}] {_e(f.detector)}: {_e(f.message)}</li>"
                           for f in rec.findings)
        body = (f"<p><a href='/'>← runs</a></p><h1>{_e(run.workflow)}</h1>"
                f"<p>run {_e(run.id)} · <span class='{_e(run.status)}'>{_e(run.status)}</span>"
                f" · started {_e(_time(run.started_ns))} UTC"
                f"{' · owner ' + _e(run.owner) if run.owner else ''}"
                f"{' · reason: ' + _e(run.reason) if run.reason else ''}</p>"
                "<h2>Steps</h2><table><tr><th>#</th><th>name</th><th>kind</th><th>agent</th>"
                "<th>status</th><th>model</th><th>input</th><th>output</th></tr>"
                f"{steps}</table><h2>Data edges</h2><ul>{edges or '<li>none</li>'}</ul>"
                f"<h2>Findings</h2><ul>{findings or '<li>none</li>'}</ul>")
        return _page(f"run {run.id[:12]}", body)
