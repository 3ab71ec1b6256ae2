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
    """The demo's flightlog.toml: one webhook per team, owners from the demo's code."""
    parts = [
        "# Written by `flightlog demo` for its own store (flightlog.db beside this file).\n"
        f"# The webhooks went to a receiver the demo ran on 127.0.0.1:{port} while it recorded;\n"
        "# nothing listens there afterwards. Real channels (Slack, PagerDuty, email, webhooks):\n"
        "# docs/alerting.md; a receiver to try them with: examples/webhook_receiver.py.\n"
        "[respond]\nauto_resolve_after = 3\n"
    ]
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


def alerting_section(result: Any, echo: Callable[[str], None]) -> None:
    """Deliver what the response engine queued while the demo recorded (it ran as each run
    ended, with the demo's own flightlog.toml) and print who was told what."""
    from flightlog.respond.config import load_respond_config
    from flightlog.respond.engine import Engine

    receiver = result.receiver
    if receiver is None or result.config_path is None:
        return
    engine = Engine(result.store, load_respond_config(result.config_path))
    engine.process_runs(result.run_ids)  # a no-op for runs the engine already saw
    engine.tick()
    echo("")
    echo(
        "Who is told (the response engine, delivering to a local webhook receiver "
        f"on 127.0.0.1:{receiver.port}):"
    )
    received = [(p, b) for p, b in list(receiver.received) if isinstance(b, dict)]
    if not received:
        echo("  nothing was sent")
        return
    for path, body in received:
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
    # The page about this demo's failed run (never another incident of the same store).
    rid = result.failed_run_id or ""
    page = next(
        (
            a
            for _, b in received
            for a in b.get("alerts", [])
            if a["labels"].get("role") == "root_cause"
            and a["status"] == "firing"
            and rid
            and rid in a["annotations"].get("description", "")
        ),
        None,
    )
    if page:
        echo("  The page said:")
        for line in page["annotations"]["description"].splitlines():
            echo("    " + line)
