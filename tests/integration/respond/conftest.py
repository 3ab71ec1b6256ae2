"""Real receivers on loopback (HTTP for webhook/Slack/PagerDuty, aiosmtpd for email), a
config writer, and a recorded claims workflow (through the real SDK)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import flightlog


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: Any
    status: int


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 recording every POST. ``script[path]`` is a list of
    status codes to answer in turn (then 200); a code of 0 means "hang" (never answer
    before ``hang_s``)."""

    port: int = 0
    requests: list[Request] = field(default_factory=list)
    arrivals: list[tuple[str, str]] = field(default_factory=list)  # (path, Idempotency-Key)
    script: dict[str, list[int]] = field(default_factory=dict)
    headers_out: dict[int, dict[str, str]] = field(default_factory=dict)
    hang_s: float = 30.0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with receiver._lock:
                    receiver.arrivals.append((self.path, self.headers.get("Idempotency-Key", "")))
                    queue = receiver.script.get(self.path) or []
                    status = queue.pop(0) if queue else 200
                if status == 0:
                    time.sleep(receiver.hang_s)
                    return
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode()
                with receiver._lock:
                    receiver.requests.append(
                        Request(self.path, dict(self.headers.items()), body, status)
                    )
                self.send_response(status)
                for k, v in receiver.headers_out.get(status, {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"status":"ok"}' if status < 400 else b'{"error":"nope"}')

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def delivered(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path and r.status < 300]

    def all(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@dataclass
class Mailbox:
    messages: list[Any] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        from email import message_from_bytes

        self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    import socket

    from aiosmtpd.controller import Controller

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


def write_config(
    path: Path,
    receiver: Receiver,
    *,
    smtp_port: int | None = None,
    route: str = "",
    extra: str = "",
) -> Path:
    """The test configuration: platform (catch-all), claims-team (workflow owner, Slack +
    webhook), search-team (search_* steps; paged on PagerDuty, escalates to a lead)."""
    email_team = ', "mail"' if smtp_port else ""
    text = f"""\
[respond]
auto_resolve_after = 3

[teams.platform]
channels = ["ops-hook"]

[teams.claims-team]
channels = ["claims-slack", "claims-hook"{email_team}]

[teams.search-team]
channels = ["search-hook"]
pager = ["search-pd"]
escalation = [{{ after = "10m", channels = ["lead-pd"] }}]

[[owners]]
team = "platform"

[[owners]]
workflow = "claims*"
team = "claims-team"

[[owners]]
workflow = "claims*"
step = "search_*"
team = "search-team"

[channels.ops-hook]
type = "webhook"
url = "{receiver.url("/ops")}"
timeout = "2s"

[channels.claims-hook]
type = "webhook"
url = "{receiver.url("/claims")}"
timeout = "2s"

[channels.search-hook]
type = "webhook"
url = "{receiver.url("/search")}"
timeout = "2s"

[channels.claims-slack]
type = "slack"
url = "{receiver.url("/slack/T000/B000/secret")}"
timeout = "2s"

[channels.search-pd]
type = "pagerduty"
url = "{receiver.url("/v2/enqueue")}"
routing_key = "search-routing-key-0123456789abcd"
timeout = "2s"

[channels.lead-pd]
type = "pagerduty"
url = "{receiver.url("/lead/v2/enqueue")}"
routing_key = "lead-routing-key-0123456789abcdef"
timeout = "2s"
"""
    if smtp_port:
        text += f"""
[channels.mail]
type = "email"
host = "127.0.0.1"
port = {smtp_port}
from = "flightlog@example.test"
to = ["claims-oncall@example.test"]
timeout = "5s"
"""
    text += (
        "\n[route]\n"
        + (route or 'group_wait = "30s"\ngroup_interval = "5m"\nrepeat_interval = "4h"\n')
        + extra
    )
    path.write_text(text)
    return path


# -- the recorded workflow (real SDK) ------------------------------------------------------------
@flightlog.step(kind="tool", agent="retriever")
def search_policy(query: str, broken: bool) -> list[str]:
    return [] if broken else [f"{query} policy section {i}" for i in range(3 + len(query) % 3)]


@flightlog.step(kind="llm", agent="planner")
def assess(docs: list[str]) -> dict[str, Any]:
    return {"covered": bool(docs), "basis": docs[:1]}


@flightlog.step(kind="guardrail", agent="validator")
def validate_claim(assessment: dict[str, Any], strict: bool) -> bool:
    if strict:
        raise ValueError("validator crashed: strict mode rejects every claim")
    ok = flightlog.check(assessment["covered"], "covered", "claim is not covered by any policy")
    if not ok:
        raise ValueError("claim rejected: no supporting policy")
    return True


def claims_run(
    text: str, *, broken: bool = False, strict: bool = False, workflow: str = "claims-triage"
) -> str:
    """One run of a 3-step workflow; ``broken`` breaks retrieval (root cause step 1),
    ``strict`` makes the validator fail by itself (root cause step 3)."""
    try:
        with flightlog.run(workflow, steps=3) as run:
            validate_claim(assess(search_policy(text, broken)), strict)
    except ValueError:
        pass
    return run.id


def _record_history(url: str) -> Iterator[str]:
    flightlog.configure(url)
    for i in range(5):
        claims_run(f"claim {i}")
    flightlog.flush()
    yield url
    flightlog.shutdown()


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[str]:
    """A SQLite store URL with the SDK configured on it; 5 successful runs as history."""
    yield from _record_history(f"sqlite:///{tmp_path / 'flightlog.db'}")


@pytest.fixture(params=["sqlite", "postgresql"])
def recorded_both(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """As ``recorded``, on SQLite and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'flightlog.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    yield from _record_history(url)
