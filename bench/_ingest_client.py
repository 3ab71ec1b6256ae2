"""The benchmark's clients: how the spans reach a server.

``exporter``: the real ``opentelemetry-exporter-otlp-proto-http`` exporter in this process,
one export of 512 spans at a time (as the batch span processor does). Its encoding costs
about 100 µs of CPU per span (94–117 measured), so on a 2-core machine it cannot send more
than a few thousand spans/s, whatever the server.

``preencoded``: the request bodies are encoded once, before the clock starts, by the
exporter's own encoder (``opentelemetry-exporter-otlp-proto-common``'s
``encode_spans(batch).SerializePartialToString()``: the bytes the exporter would send), then
posted by ``senders`` threads, each over its own keep-alive HTTP/1.1 connection, as an
OpenTelemetry Collector fanning out would: ``Content-Type: application/x-protobuf``, the
exporter's ``User-Agent``, gzip only when the exporter's own setting says so
(``OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION``; off by default). 429, 502, 503 and 504 are
retried after the ``Retry-After`` delay (else 1 s), a dropped connection is reopened and the
request sent again, so every span is acknowledged or the export is counted as failed.

Both report the CPU their sending threads used (``time.thread_time``); ``preencoded`` also the
one-off encoding CPU, outside the measured window.
"""

from __future__ import annotations

import gzip
import http.client
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

CLIENTS = ("preencoded", "exporter")
RETRYABLE = (429, 502, 503, 504)


@dataclass
class Bodies:
    """Encoded requests, (body, spans in it), and what encoding them cost."""

    requests: list[tuple[bytes, int]]
    encode_cpu_s: float
    compression: str


def exporter_settings(url: str, headers: dict[str, str]) -> tuple[dict[str, str], str]:
    """The headers and compression the real exporter would use for ``url`` (read from an
    exporter made as ``--client exporter`` makes it; its internals vary between versions,
    hence the fallbacks: the OTLP/HTTP content type and no compression, its defaults)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    exporter = OTLPSpanExporter(endpoint=url, headers=headers or None)
    try:
        client = getattr(exporter, "_client", exporter)
        sent = getattr(client, "_headers", None)
        if sent is None:
            session = getattr(client, "_session", None)
            sent = dict(session.headers) if session is not None else {}
        compression = str(getattr(client, "_compression", "none")).lower()
    finally:
        exporter.shutdown()
    out = {k: v for k, v in sent.items() if k.lower() not in ("accept-encoding", "connection")}
    if not any(k.lower() == "content-type" for k in out):
        out["Content-Type"] = "application/x-protobuf"
    out.update(headers)
    if "gzip" in compression:
        out["Content-Encoding"] = "gzip"
        return out, "gzip"
    if "deflate" in compression:
        raise ValueError("the exporter is set to deflate; the bench sends none or gzip")
    return out, "none"


def encode(batches: Sequence[Sequence[Any]], compression: str) -> Bodies:
    """Each batch encoded once, as the exporter encodes it (``compression``: from
    ``exporter_settings``)."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    cpu = time.thread_time()
    requests = []
    for batch in batches:
        body = encode_spans(batch).SerializePartialToString()
        if compression == "gzip":
            body = gzip.compress(body)
        requests.append((body, len(batch)))
    return Bodies(requests, time.thread_time() - cpu, compression)


def post_all(
    url: str,
    headers: dict[str, str],
    bodies: Bodies,
    senders: int,
    timeout: float,
    deadline: float,
    out: dict[str, Any],
) -> None:
    """Post every body, ``senders`` at a time, each sender on its own keep-alive
    connection; record acknowledged spans, failed requests and the senders' CPU in ``out``
    (``acked``, ``failed``, ``retries``, ``cpu_s``, ``ack_t``)."""
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path
    work: queue.Queue[tuple[bytes, int]] = queue.Queue()
    for item in bodies.requests:
        work.put(item)
    lock = threading.Lock()
    out.update(acked=0, failed=0, retries=0, cpu_s=0.0)

    def sender() -> None:
        cpu = time.thread_time()
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            while time.monotonic() < deadline:
                try:
                    body, spans = work.get_nowait()
                except queue.Empty:
                    return
                ok, retries = _post(conn, path, body, headers, deadline)
                with lock:
                    out["retries"] += retries
                    if ok:
                        out["acked"] += spans
                    else:
                        out["failed"] += 1
        finally:
            conn.close()
            with lock:
                out["cpu_s"] += time.thread_time() - cpu

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(max(1, senders))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        out["ack_t"] = time.monotonic()


def _post(
    conn: http.client.HTTPConnection,
    path: str,
    body: bytes,
    headers: dict[str, str],
    deadline: float,
) -> tuple[bool, int]:
    """Send one request until it is acknowledged (2xx), refused for good, or the deadline
    passes. Returns (acknowledged, retries)."""
    retries = 0
    while True:
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            status, retry_after = resp.status, resp.getheader("Retry-After")
            if resp.getheader("Connection", "").lower() == "close":
                conn.close()
        except (OSError, http.client.HTTPException):
            conn.close()  # reopened by the next request
            status, retry_after = 503, "0.1"
        if 200 <= status < 300:
            return True, retries
        if status not in RETRYABLE:
            return False, retries
        try:
            delay = float(retry_after) if retry_after is not None else 1.0
        except ValueError:
            delay = 1.0
        if time.monotonic() + delay > deadline:
            return False, retries
        retries += 1
        time.sleep(delay)
