"""The demo's alerting part: who is paged for the demo's failure, shown for real.

A local webhook receiver runs in-process on 127.0.0.1; every owner named in the demo's code
becomes a team with a webhook channel to it; the response engine processes the demo's runs
and delivers through the outbox. The section prints who was paged and notified, and what the
page said.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEMO_TEAMS = (
    "platform",
    "claims-team",
    "search-team",
    "underwriting-ai",
    "risk-team",
    "pricing-team",
    "comms-team",
)


class LocalReceiver:
    """A webhook receiver on 127.0.0.1 that keeps what it is sent (path, JSON body)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, Any]] = []
        lock = threading.Lock()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    received.append((self.path, json.loads(raw or b"null")))
                self.send_response(200)
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def demo_config_text(port: int) -> str:
    """A flightlog.toml for the demo: one webhook per team, owners from the demo's code."""
    parts = ["[respond]\nauto_resolve_after = 3\n"]
    for team in DEMO_TEAMS:
        parts.append(f'[teams.{team}]\nchannels = ["{team}-hook"]\n')
        parts.append(
            f'[channels.{team}-hook]\ntype = "webhook"\n'
            f'url = "http://127.0.0.1:{port}/{team}"\ntimeout = "5s"\n'
        )
    parts.append('[[owners]]\nteam = "platform"\n')
    parts.append('[[owners]]\nworkflow = "claims-*"\nteam = "claims-team"\n')
    parts.append(
        '[route]\ngroup_by = ["incident"]\ngroup_wait = "0s"\n'
        'group_interval = "0s"\nrepeat_interval = "4h"\n'
    )
    return "\n".join(parts)


def alerting_section(store: Any, failed_run_id: str | None, echo: Callable[[str], None]) -> None:
    """Run the response engine over the demo's store and print who was told what."""
    from flightlog.config import parse_config
    from flightlog.respond.config import respond_config
    from flightlog.respond.engine import Engine

    receiver = LocalReceiver()
    try:
        config = respond_config(parse_config(demo_config_text(receiver.port)), environ={})
        engine = Engine(store, config)
        engine.process_runs(engine.pending_runs())
        engine.tick()
    finally:
        receiver.close()
    echo("")
    echo(
        "Who is told (the response engine, delivering to a local webhook receiver "
        f"on 127.0.0.1:{receiver.port}):"
    )
    if not receiver.received:
        echo("  nothing was sent (no new failure since the last demo run was processed)")
        return
    for path, body in receiver.received:
        team = path.strip("/")
        for alert in body.get("alerts", []):
            labels, notes = alert["labels"], alert["annotations"]
            if alert["status"] == "resolved":
                how = "told the incident is resolved"
            elif labels["role"] == "root_cause":
                how = "PAGED as owner of the root-cause step"
            else:
                how = "notified as owner of the workflow"
            echo(
                f"  {team:<13} {how} (incident #{labels['incident']}, "
                f"{notes['affected_runs']} run(s) affected)"
            )
    first = next((b for _, b in receiver.received if b.get("alerts")), None)
    page = next(
        (
            b
            for _, b in receiver.received
            for a in b.get("alerts", [])
            if a["labels"]["role"] == "root_cause" and a["status"] == "firing"
        ),
        first,
    )
    if page:
        echo("  The page said:")
        for line in page["alerts"][0]["annotations"]["description"].splitlines():
            echo("    " + line)
    echo(
        "  Configure real channels (Slack, PagerDuty, email, webhooks) in flightlog.toml: "
        "docs/alerting.md"
    )
    echo(
        "  flightlog incidents   flightlog alerts   flightlog owners explain --workflow "
        "claims-triage --step search_policy"
    )
