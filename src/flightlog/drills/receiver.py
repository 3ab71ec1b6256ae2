"""The local receiver a drill starts: an HTTP server on loopback that records every webhook
(Alertmanager JSON) it is sent, with the time it arrived. Each team's channel posts to
``/<team>``, so what arrived where says which team was paged."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from flightlog.drills.loopback import LoopbackServer


@dataclass
class Received:
    path: str
    at_ns: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def team(self) -> str:
        return self.path.strip("/").split("/", 1)[0]

    def alerts(self) -> list[dict[str, Any]]:
        alerts = self.body.get("alerts")
        return [a for a in alerts if isinstance(a, dict)] if isinstance(alerts, list) else []


class WebhookReceiver(LoopbackServer):
    """``with WebhookReceiver() as r: ... r.url, r.received``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        received: list[Received] = []
        lock = threading.Lock()
        self.received = received
        self._lock = lock
        self._arrived = threading.Condition(lock)
        arrived = self._arrived

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"raw": raw.decode("utf-8", "replace")}
                item = Received(
                    self.path,
                    time.time_ns(),
                    body if isinstance(body, dict) else {"value": body},
                    {k: v for k, v in self.headers.items()},
                )
                with arrived:
                    received.append(item)
                    arrived.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        super().__init__(Handler, host, port, name="flightlog-drill-receiver")

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)
