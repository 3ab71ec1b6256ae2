"""The web UI's sign-in (cookie, CSRF), the Host allow-list and the security headers, against a
real server on loopback."""

from __future__ import annotations

import re

import httpx

from tests.security.conftest import Keyed
from tests.security.otlp import request, span, trace_id

HTML = {"Accept": "text/html"}


def _csrf(client: httpx.Client) -> str:
    page = client.get("/signin")
    assert page.status_code == 200
    m = re.search(r"name='csrf' value='([^']+)'", page.text)
    assert m is not None
    return m.group(1)


def test_sign_in_with_a_read_key_sets_a_strict_httponly_cookie(keyed: Keyed) -> None:
    rid = trace_id()
    r = httpx.post(
        keyed.url + "/v1/traces",
        content=request(span(rid, name="alpha-visible")),
        headers={"Content-Type": "application/json"} | keyed.auth("alpha-ingest"),
    )
    assert r.status_code == 200
    with httpx.Client(base_url=keyed.url) as browser:
        first = browser.get("/", headers=HTML)
        assert first.status_code == 303 and first.headers["location"] == "/signin"
        token = _csrf(browser)
        signed = browser.post("/signin", data={"csrf": token, "key": keyed.keys["alpha-read"]})
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert keyed.keys["alpha-read"] not in cookie
        runs = browser.get("/", headers=HTML)
        assert runs.status_code == 200 and "alpha-visible" in runs.text
        assert browser.get(f"/api/v1/runs/{rid}").status_code == 200
        # the session ends with its key
        out = browser.get("/signout")
        token = re.search(r"name='csrf' value='([^']+)'", out.text).group(1)  # type: ignore[union-attr]
        assert browser.post("/signout", data={"csrf": "forged"}).status_code == 403
        assert browser.post("/signout", data={"csrf": token}).status_code == 303
        browser.cookies.clear()
        assert browser.get("/api/v1/runs").status_code == 401


def test_sign_in_refuses_forged_csrf_cross_origin_and_ingest_keys(keyed: Keyed) -> None:
    with httpx.Client(base_url=keyed.url) as browser:
        token = _csrf(browser)
        key = keyed.keys["alpha-read"]
        assert browser.post("/signin", data={"csrf": "guess", "key": key}).status_code == 403
        # a cross-site form post carries the victim's cookies but not the token
        with httpx.Client(base_url=keyed.url) as attacker:
            assert attacker.post("/signin", data={"csrf": token, "key": key}).status_code == 403
        evil = {"Origin": "http://evil.example"}
        r = browser.post("/signin", data={"csrf": token, "key": key}, headers=evil)
        assert r.status_code == 403
        r = browser.post(
            "/signin", data={"csrf": _csrf(browser), "key": keyed.keys["alpha-ingest"]}
        )
        assert r.status_code == 401 and "cannot read" in r.text
        assert "flightlog_session" not in r.headers.get("set-cookie", "")


def test_a_session_does_not_cross_projects(keyed: Keyed) -> None:
    rid = trace_id()
    httpx.post(
        keyed.url + "/v1/traces",
        content=request(span(rid, name="alpha-only")),
        headers={"Content-Type": "application/json"} | keyed.auth("alpha-ingest"),
    ).raise_for_status()
    with httpx.Client(base_url=keyed.url) as browser:
        token = _csrf(browser)
        browser.post("/signin", data={"csrf": token, "key": keyed.keys["beta-read"]})
        assert browser.get(f"/runs/{rid}", headers=HTML).status_code == 404
        assert "alpha-only" not in browser.get("/", headers=HTML).text


def test_host_header_must_be_allowed(keyed: Keyed) -> None:
    auth = keyed.auth("alpha-read")
    for host in ("evil.example", "evil.example:4318", "127.0.0.1.evil.example"):
        r = httpx.get(keyed.url + "/api/v1/runs", headers=auth | {"Host": host})
        assert r.status_code == 421, host
    for host in ("127.0.0.1", f"localhost:{keyed.srv.port}", f"[::1]:{keyed.srv.port}"):
        r = httpx.get(keyed.url + "/api/v1/runs", headers=auth | {"Host": host})
        assert r.status_code == 200, host
    assert httpx.get(keyed.url + "/healthz", headers={"Host": "10.0.0.7"}).status_code == 200


def test_allowed_host_option(server_factory) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory.start("--allowed-host", "flightlog.internal")
    r = httpx.get(srv.url + "/api/v1/runs", headers={"Host": "flightlog.internal:4318"})
    assert r.status_code == 200
    assert httpx.get(srv.url + "/", headers={"Host": "other.internal"}).status_code == 421


def test_security_headers_on_every_response(keyed: Keyed) -> None:
    for path, headers in (
        ("/signin", {}),
        ("/api/v1/runs", keyed.auth("alpha-read")),
        ("/", keyed.auth("alpha-read")),
        ("/nowhere", keyed.auth("alpha-read")),
        ("/api/v1/runs", {}),  # a 401 too
        ("/healthz", {}),
    ):
        r = httpx.get(keyed.url + path, headers=headers)
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, path
        assert "script-src" not in csp and "unsafe-eval" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-frame-options"] == "DENY"
    page = httpx.get(keyed.url + "/", headers=keyed.auth("alpha-read")).text
    assert "<script" not in page.lower()
