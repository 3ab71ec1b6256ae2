"""An OpenAI-compatible fault proxy: drills at the LLM boundary, for applications traced only
through OpenTelemetry (no ``@flightlog.step`` to intercept).

Point the application's ``base_url`` at the proxy; requests are forwarded to ``upstream``
(``https://api.openai.com/v1`` or any compatible endpoint) and, for chat completions, a fault
is injected with its probability (one seeded RNG):

==================  ==========================================================
kind                the client sees
==================  ==========================================================
``exception``       HTTP 500 with an OpenAI-style error body
``latency``         a delay of ``seconds`` (default 0.05), then HTTP 504
``rate_limit``      HTTP 429 with ``Retry-After: retry_after`` (default 2)
``empty``           the answer's content is ``""``
``truncate``        the content cut to ``keep`` (0.3), ``finish_reason: "length"``
``malformed_json``  the content cut in the middle (unparseable JSON)
``injection``       prompt-injection text appended to the content
``corrupt_field``   a JSON answer with ``field`` (default: first key) replaced
``missing_field``   a JSON answer without ``field``
==================  ==========================================================

Injected responses carry ``x-flightlog-fault: KIND``. Streaming requests are forwarded
unchanged. Secrets (the ``Authorization`` header) are passed through, never logged.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any

from flightlog.drills.faults import KINDS, Fault
from flightlog.drills.loopback import LoopbackServer
from flightlog.errors import ConfigurationError

PROXY_KINDS = tuple(k for k in KINDS if k != "custom")
_HOP = {"host", "content-length", "connection", "accept-encoding", "transfer-encoding"}


def parse_fault_args(items: Sequence[str]) -> list[Fault]:
    """``KIND[:PROBABILITY]`` strings (the CLI's ``--fault``) -> faults."""
    out = []
    for item in items:
        kind, _, p = item.partition(":")
        if kind not in PROXY_KINDS:
            raise ConfigurationError(
                f"--fault {item!r}: kind must be one of {', '.join(PROXY_KINDS)}"
            )
        try:
            prob = float(p) if p else 1.0
        except ValueError as exc:
            raise ConfigurationError(f"--fault {item!r}: probability must be a number") from exc
        out.append(Fault("llm", kind, prob))
    return out


class FaultProxy(LoopbackServer):
    """``with FaultProxy(upstream, faults) as p: p.url`` (``/v1`` is the API root)."""

    def __init__(
        self,
        upstream: str,
        faults: Sequence[Fault],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | str = 0,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults = list(faults)
        self.rng = random.Random(seed)
        self.injected: list[str] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    if k.lower() not in _HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _forward(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, data = proxy.handle(
                    method, self.path, {k: v for k, v in self.headers.items()}, body
                )
                self._send(status, data, headers)

            def do_POST(self) -> None:  # noqa: N802
                self._forward("POST")

            def do_GET(self) -> None:  # noqa: N802
                self._forward("GET")

        super().__init__(Handler, host, port, name="flightlog-fault-proxy")

    def _choose(self) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.probability >= 1.0 or self.rng.random() < f.probability:
                    self.injected.append(f.kind)
                    return f
        return None

    def _upstream(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        suffix = path[3:] if path.startswith("/v1") else path
        req = urllib.request.Request(
            self.upstream + suffix,
            data=body if method == "POST" else None,
            method=method,
            headers={k: v for k, v in headers.items() if k.lower() not in _HOP},
        )
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:  # noqa: S310 - configured
                return resp.status, dict(resp.headers.items()), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers.items()), exc.read()
        except (urllib.error.URLError, OSError) as exc:
            return (
                502,
                {"Content-Type": "application/json"},
                _error(
                    f"fault proxy: upstream {self.upstream} unreachable: {exc}", "upstream_error"
                ),
            )

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Forward one request, injecting a fault into chat completions."""
        streaming = False
        if body:
            try:
                streaming = bool(json.loads(body).get("stream"))
            except (ValueError, AttributeError):
                streaming = False
        fault = (
            self._choose()
            if method == "POST" and path.rstrip("/").endswith("chat/completions") and not streaming
            else None
        )
        if fault is None:
            return self._upstream(method, path, headers, body)
        mark = {"Content-Type": "application/json", "x-flightlog-fault": fault.kind}
        p = fault.params
        if fault.kind == "exception":
            return 500, mark, _error("injected fault: the model server failed", "server_error")
        if fault.kind == "latency":
            time.sleep(float(p.get("seconds", 0.05)))
            return 504, mark, _error("injected fault: upstream timed out", "timeout")
        if fault.kind == "rate_limit":
            retry = f"{float(p.get('retry_after', 2)):g}"
            return (
                429,
                mark | {"Retry-After": retry},
                _error("injected fault: rate limit reached", "rate_limit_exceeded"),
            )
        status, up_headers, data = self._upstream(method, path, headers, body)
        if status != 200:
            return status, up_headers, data
        try:
            doc = json.loads(data)
            message = doc["choices"][0]["message"]
            content = message.get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError):
            return status, up_headers, data
        if fault.kind == "truncate":
            message["content"] = content[: int(len(content) * float(p.get("keep", 0.3)))]
            doc["choices"][0]["finish_reason"] = "length"
        elif fault.kind in ("corrupt_field", "missing_field"):
            try:
                parsed = json.loads(content)
            except ValueError:
                parsed = None
            altered = (
                fault.after(parsed) if isinstance(parsed, (dict, list)) else fault.after(content)
            )
            message["content"] = altered if isinstance(altered, str) else json.dumps(altered)
        else:
            altered = fault.after(content)
            message["content"] = altered if isinstance(altered, str) else ""
        return 200, up_headers | mark, json.dumps(doc).encode()


def _error(message: str, kind: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": kind, "code": kind}}).encode()


def serve_proxy(
    upstream: str, faults: Sequence[Fault], *, host: str, port: int, seed: int | str = 0
) -> None:
    """Run the proxy until interrupted (``flightlog drill --proxy``)."""
    import click

    proxy = FaultProxy(upstream, faults, host=host, port=port, seed=seed)
    click.echo(
        f"fault proxy on {proxy.url}/v1 -> {upstream}; faults: "
        + (", ".join(f"{f.kind}:{f.probability:g}" for f in faults) or "none")
        + " (Ctrl-C stops)"
    )
    proxy.serve_forever()
    click.echo(f"injected {len(proxy.injected)} fault(s)")
