"""The page shell of the web UI: escaping, formatting, the one stylesheet, the headers.

Everything a run captured is untrusted (LLM and tool outputs can carry markup and prompt
injections): every value goes through ``e`` (``html.escape`` with quotes), payloads are cut
to ``PREVIEW`` characters, and every page is sent with a Content-Security-Policy that allows
no script at all, so even a value that slipped through could not run.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from starlette.responses import HTMLResponse

PREVIEW = 4000  # characters of a pretty-printed payload shown on the page
HEADERS = {
    "Content-Security-Policy": (
        # default-src 'none' forbids every script (no script-src needed); forms post here only.
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
STATUS_CLASS = {
    "succeeded": "ok",
    "ok": "ok",
    "failed": "bad",
    "error": "bad",
    "running": "run",
    "unknown": "unk",
    "triggered": "bad",
    "acknowledged": "warn",
    "resolved": "ok",
    "critical": "bad",
    "warning": "warn",
    "info": "unk",
}

STYLE = """
*{box-sizing:border-box}body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;
background:#f6f7f9}header{background:#1d2330;color:#fff;padding:8px 20px;display:flex;
gap:18px;align-items:center}header a{color:#cdd6e6;text-decoration:none}
header a.on,header a:hover{color:#fff}header b{margin-right:12px}main{padding:16px 20px;
max-width:1400px}h1{font-size:20px;margin:6px 0}h2{font-size:16px;margin:22px 0 8px}
a{color:#2456b3}table{border-collapse:collapse;background:#fff;width:100%}
td,th{border-bottom:1px solid #e3e6eb;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#eef0f4;font-weight:600;white-space:nowrap}tr.rc td{background:#fff1e6}
tr.fp td{background:#fde8e8}.num{text-align:right;font-variant-numeric:tabular-nums}
.pill{display:inline-block;padding:0 8px;border-radius:9px;font-size:12px;font-weight:600}
.ok{background:#dcf3e3;color:#11602c}.bad{background:#fbdcdc;color:#9b1111}
.run{background:#dde8fb;color:#1f4690}.warn{background:#fdf0cf;color:#7a5300}
.unk{background:#e8e9ec;color:#4a5060}.muted{color:#6a7080}.mono,code{font-family:
ui-monospace,monospace;font-size:12.5px}pre{white-space:pre-wrap;word-break:break-word;
max-height:360px;overflow:auto;background:#f3f4f7;padding:6px;margin:4px 0;font-size:12px}
details>summary{cursor:pointer;color:#2456b3}form.filters{display:flex;gap:10px;
flex-wrap:wrap;align-items:end;margin:8px 0 12px}form.filters label{display:flex;
flex-direction:column;font-size:12px;color:#4a5060}input,select,button{font:inherit;
padding:3px 6px}.panel{background:#fff;border:1px solid #e3e6eb;border-left:4px solid
#9b1111;padding:10px 14px;margin:10px 0}.panel.hyp{border-left-color:#c98a00}
.meta span{margin-right:16px}.pager{margin:10px 0;display:flex;gap:14px}
svg{background:#fff;border:1px solid #e3e6eb}svg text{font:12px system-ui,sans-serif}
td.nw{white-space:nowrap}
.empty{background:#fff;border:1px dashed #c5cad3;padding:18px;color:#4a5060}
"""


def e(value: Any) -> str:
    """HTML-escape any value (None as empty), quotes included."""
    return escape("" if value is None else str(value), quote=True)


def q(value: str) -> str:
    """A path segment, URL-quoted and escaped for an attribute."""
    return e(quote(value, safe=""))


def qs(params: dict[str, Any]) -> str:
    """A query string of the non-empty ``params``, escaped for an attribute."""
    return e(urlencode({k: v for k, v in params.items() if v not in (None, "")}))


def when(ns: int | None) -> str:
    if not ns:
        return "-"
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(ns: int | None) -> str:
    from flightlog._format import duration as fmt

    return fmt(ns)


def pill(status: str | None) -> str:
    cls = STATUS_CLASS.get(status or "", "unk")
    return f"<span class='pill {cls}'>{e(status or '-')}</span>"


def page(title: str, body: str, *, active: str = "", status: int = 200) -> HTMLResponse:
    nav = "".join(
        f"<a href='{href}'{' class=on' if key == active else ''}>{label}</a>"
        for key, href, label in (
            ("runs", "/", "Runs"),
            ("incidents", "/incidents", "Incidents"),
            ("reliability", "/reliability", "Reliability"),
            ("audit", "/audit", "Audit"),
            ("api", "/openapi.json", "API"),
        )
    )
    html = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{e(title)} · Flightlog</title><style>{STYLE}</style></head><body>"
        f"<header><b>Flightlog</b>{nav}</header><main>{body}</main></body></html>"
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def error_page(status: int, message: str) -> HTMLResponse:
    title = {400: "Bad request", 404: "Not found"}.get(status, "Error")
    return page(
        title, f"<h1>{e(title)}</h1><p>{e(message)}</p><p><a href='/'>← runs</a></p>", status=status
    )
