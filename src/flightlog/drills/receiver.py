"""The local receiver a drill starts: an HTTP server on loopback that records every webhook
(Alertmanager JSON) it is sent, with the time it arrived. Each team's channel posts to
``/<team>``, so what arrived where says which team was paged."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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


class WebhookReceiver:
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

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="flightlog-drill-receiver", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)
