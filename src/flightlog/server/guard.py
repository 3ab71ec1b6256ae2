"""The server's front gate (ASGI middleware), in the order a request meets it:

1. **Security headers** on every response: a Content-Security-Policy without script and with
   ``frame-ancestors 'none'``, ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``,
   ``Referrer-Policy: no-referrer``, ``Cache-Control: no-store``.
2. **Host allow-list** (DNS rebinding): the ``Host`` header must name the loopback
   (``127.0.0.1``, ``localhost``, ``::1``), the address the server listens on, or a name given
   with ``--allowed-host``; otherwise 421. The health checks are exempt (probes use the pod
   address).
3. **Authentication**, once any API key exists (``flightlog keys``): ``Authorization: Bearer
   <key>`` or, for the web UI, a session cookie from ``/signin``. Missing, unknown or
   revoked: 401. ``/healthz`` and ``/readyz`` stay open.
4. **Authorisation** by scope: ``POST /v1/traces`` needs ``ingest``; every read needs
   ``read``; ``/api/v1/ingest/stats``, ``/audit``, ``/reliability`` and
   ``/api/v1/reliability`` (server-wide figures, every project's runs) need ``admin``;
   ``admin`` may do everything. Otherwise 403. The key's project goes to the handlers in
   ``scope["flightlog.key"]``; they read through ``ProjectStore`` (``flightlog.access``).

Web sign-in: ``GET /signin`` shows a form; ``POST /signin`` with a read (or admin) key sets
an ``HttpOnly; SameSite=Strict`` session cookie (``Secure`` over HTTPS). Every form that
changes state (sign-in, sign-out) carries a CSRF token: sign-in checks it against a
``SameSite=Strict`` cookie set with the form (double submit), sign-out against the session's
own token; a cross-site ``Origin`` is refused as well. Sessions live in memory and re-check
their key on each request, so revoking a key ends its sessions.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import orjson

from flightlog.access.keys import ApiKey, KeyRing

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PUBLIC = frozenset({"/healthz", "/readyz"})
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
SESSION_COOKIE = "flightlog_session"
CSRF_COOKIE = "flightlog_csrf"
SESSION_SECONDS = 12 * 3600
MAX_SESSIONS = 10_000
MAX_FORM = 8 * 1024
KEY_SCOPE = "flightlog.key"

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
)


def required_scope(method: str, path: str) -> str:
    """The scope a request needs (``admin`` implies the others)."""
    if path == "/v1/traces":
        return "ingest"
    if path in ("/api/v1/ingest/stats", "/audit", "/reliability") or path.startswith(
        "/api/v1/reliability"
    ):
        return "admin"  # server-wide figures, over every project's runs
    return "read"


def principal(scope: Scope) -> ApiKey | None:
    """The key a request was made with (None when the server has no keys)."""
    key: ApiKey | None = scope.get(KEY_SCOPE)
    return key


def host_name(raw: str) -> str:
    """``Host`` header value without its port, lower case (``[::1]:4318`` -> ``::1``)."""
    raw = raw.strip().lower()
    if raw.startswith("["):
        return raw[1 : raw.find("]")] if "]" in raw else raw
    if raw.count(":") == 1:
        return raw.split(":", 1)[0]
    return raw


@dataclass
class _Session:
    key_id: str
    csrf: str
    expires: float


class Sessions:
    """Signed-in browsers: a random session id -> the key it signed in with (in memory)."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, _Session] = OrderedDict()

    def open(self, key_id: str) -> tuple[str, _Session]:
        sid = secrets.token_urlsafe(32)
        s = _Session(key_id, secrets.token_urlsafe(32), time.monotonic() + SESSION_SECONDS)
        self._items[sid] = s
        while len(self._items) > MAX_SESSIONS:
            self._items.popitem(last=False)
        return sid, s

    def get(self, sid: str | None) -> _Session | None:
        if not sid:
            return None
        s = self._items.get(sid)
        if s is None or s.expires < time.monotonic():
            self._items.pop(sid, None)
            return None
        return s

    def close(self, sid: str) -> None:
        self._items.pop(sid, None)


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in scope.get("headers") or ():
        out.setdefault(k.decode("latin-1").lower(), v.decode("latin-1"))
    return out


def _cookies(header: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            out.setdefault(name, value)
    return out


class Guard:
    """ASGI middleware: headers, Host, authentication and authorisation (module docstring)."""

    def __init__(self, app: ASGIApp, keys: KeyRing, allowed_hosts: frozenset[str]) -> None:
        self.app = app
        self.keys = keys
        self.allowed_hosts = allowed_hosts
        self.sessions = Sessions()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers") or ()}
                message["headers"] = list(message.get("headers") or ()) + [
                    (k, v) for k, v in SECURITY_HEADERS if k not in present
                ]
            await send(message)

        path: str = scope["path"]
        method: str = scope["method"]
        if path in PUBLIC:
            await self.app(scope, receive, send_secured)
            return
        headers = _headers(scope)
        host = host_name(headers.get("host", ""))
        if "*" not in self.allowed_hosts and host not in self.allowed_hosts:
            await _error(
                send_secured,
                421,
                f"Host {host!r} is not served here; start the server with --allowed-host "
                f"{host or 'NAME'} to serve it",
            )
            return
        if path in ("/signin", "/signout"):
            await self._sign(scope, receive, send_secured, headers)
            return
        enabled = self.keys.locked or await anyio.to_thread.run_sync(self.keys.enabled)
        if not enabled:
            await self.app(scope, receive, send_secured)
            return
        key, problem = await self._authenticate(headers)
        if key is None:
            if _wants_html(method, path, headers) and problem == "no credentials":
                await _redirect(send_secured, "/signin")
                return
            await _deny(
                send_secured,
                headers,
                path,
                401,
                f"{problem}: send Authorization: Bearer <key> (see flightlog keys create)",
                [(b"www-authenticate", b'Bearer realm="flightlog"')],
            )
            return
        needed = required_scope(method, path)
        if not key.allows(needed):
            await _deny(
                send_secured,
                headers,
                path,
                403,
                f"key {key.name!r} has scope {key.scope!r}; {method} {path} needs {needed!r}",
            )
            return
        scope[KEY_SCOPE] = key
        await self.app(scope, receive, send_secured)

    async def _authenticate(self, headers: dict[str, str]) -> tuple[ApiKey | None, str]:
        auth = headers.get("authorization")
        if auth is not None:
            kind, _, token = auth.strip().partition(" ")
            if kind.lower() != "bearer" or not token.strip():
                return None, "malformed Authorization header (expected Bearer <key>)"
            key = await anyio.to_thread.run_sync(self.keys.check, token.strip())
            return key, "unknown or revoked API key"
        session = self.sessions.get(_cookies(headers.get("cookie", "")).get(SESSION_COOKIE))
        if session is not None:
            key = await anyio.to_thread.run_sync(self.keys.get, session.key_id)
            return key, "the key this session signed in with was revoked"
        return None, "no credentials"

    # -- web sign-in -------------------------------------------------------------------
    async def _sign(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str]
    ) -> None:
        method, path = scope["method"], scope["path"]
        secure = scope.get("scheme") == "https"
        cookies = _cookies(headers.get("cookie", ""))
        if method not in ("GET", "POST"):
            await _error(
                send, 405, f"method {method} not allowed on {path}", [(b"allow", b"GET, POST")]
            )
            return
        if method == "POST" and not self._same_origin(headers):
            await _error(send, 403, "cross-site request refused (Origin does not match Host)")
            return
        session_id = cookies.get(SESSION_COOKIE)
        if path == "/signout":
            session = self.sessions.get(session_id)
            if method == "GET":
                if session is None:
                    await _redirect(send, "/signin")
                    return
                await _html(send, 200, _signout_form(session.csrf))
                return
            form = await _read_form(receive)
            if session is None or not hmac.compare_digest(form.get("csrf", ""), session.csrf):
                await _error(send, 403, "missing or wrong CSRF token")
                return
            self.sessions.close(session_id or "")
            await _redirect(send, "/signin", [_cookie(SESSION_COOKIE, "", secure, expire=True)])
            return
        if method == "GET":
            token = secrets.token_urlsafe(32)
            await _html(send, 200, _signin_form(token, ""), [_cookie(CSRF_COOKIE, token, secure)])
            return
        form = await _read_form(receive)
        expected = cookies.get(CSRF_COOKIE, "")
        if not expected or not hmac.compare_digest(form.get("csrf", ""), expected):
            await _error(send, 403, "missing or wrong CSRF token; load /signin and try again")
            return
        key = await anyio.to_thread.run_sync(self.keys.check, form.get("key", ""))
        if key is None or not key.allows("read"):
            token = secrets.token_urlsafe(32)
            why = "unknown or revoked key" if key is None else f"a {key.scope} key cannot read"
            await _html(send, 401, _signin_form(token, why), [_cookie(CSRF_COOKIE, token, secure)])
            return
        if session_id:
            self.sessions.close(session_id)  # a new session id at each sign-in (fixation)
        sid, _ = self.sessions.open(key.id)
        await _redirect(send, "/", [_cookie(SESSION_COOKIE, sid, secure)])

    def _same_origin(self, headers: dict[str, str]) -> bool:
        origin = headers.get("origin")
        if origin is None or origin == "null":
            return origin is None
        return host_name(urlsplit(origin).netloc) == host_name(headers.get("host", ""))


def _wants_html(method: str, path: str, headers: dict[str, str]) -> bool:
    return (
        method == "GET"
        and not path.startswith(("/api/", "/v1/"))
        and path != "/openapi.json"
        and "text/html" in headers.get("accept", "")
    )


def _cookie(name: str, value: str, secure: bool, *, expire: bool = False) -> tuple[bytes, bytes]:
    parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
    if secure:
        parts.append("Secure")
    if expire:
        parts.append("Max-Age=0")
    return b"set-cookie", "; ".join(parts).encode("latin-1")


async def _read_form(receive: Receive) -> dict[str, str]:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > MAX_FORM or not message.get("more_body"):
            break
    fields = parse_qs(body[:MAX_FORM].decode("utf-8", "replace"), max_num_fields=10)
    return {k: v[0] for k, v in fields.items() if v}


async def _respond(
    send: Send, status: int, body: bytes, ctype: bytes, extra: list[tuple[bytes, bytes]]
) -> None:
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _error(
    send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = orjson.dumps({"error": {"status": status, "message": message}})
    await _respond(send, status, body, b"application/json", extra or [])


async def _deny(
    send: Send,
    headers: dict[str, str],
    path: str,
    status: int,
    message: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """401/403: for ``/v1/traces`` a ``google.rpc.Status`` in the request's encoding (OTLP/HTTP
    error responses), elsewhere the REST API's JSON error."""
    if path != "/v1/traces":
        await _error(send, status, message, extra)
        return
    from flightlog.server.otlp import PROTOBUF, status_protobuf

    code = 16 if status == 401 else 7  # google.rpc.Code UNAUTHENTICATED, PERMISSION_DENIED
    if headers.get("content-type", "").split(";")[0].strip().lower() == PROTOBUF:
        body, ctype = status_protobuf(code, message), PROTOBUF.encode()
    else:
        body, ctype = orjson.dumps({"code": code, "message": message}), b"application/json"
    await _respond(send, status, body, ctype, extra or [])


async def _redirect(send: Send, to: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    await _respond(send, 303, b"", b"text/plain", [(b"location", to.encode()), *(extra or [])])


async def _html(
    send: Send, status: int, body: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    await _respond(send, status, body.encode(), b"text/html; charset=utf-8", extra or [])


def _signin_form(csrf: str, problem: str) -> str:
    from flightlog.server.ui._html import e, page

    note = f"<p class='bad'>{e(problem)}</p>" if problem else ""
    body = (
        "<h1>Sign in</h1><p class='muted'>This server needs an API key with the read "
        "scope (<code>flightlog keys create NAME --scope read --project P</code>). You will "
        "see the runs of that key's project.</p>"
        f"{note}<form method='post' action='/signin'>"
        f"<input type='hidden' name='csrf' value='{e(csrf)}'>"
        "<label>API key <input type='password' name='key' autocomplete='off' size='60'>"
        "</label> <button type='submit'>Sign in</button></form>"
    )
    return bytes(page("Sign in", body).body).decode()


def _signout_form(csrf: str) -> str:
    from flightlog.server.ui._html import e, page

    body = (
        "<h1>Sign out</h1><form method='post' action='/signout'>"
        f"<input type='hidden' name='csrf' value='{e(csrf)}'>"
        "<button type='submit'>Sign out</button></form>"
    )
    return bytes(page("Sign out", body).body).decode()
