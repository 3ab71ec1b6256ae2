"""What the two-servers-on-one-PostgreSQL tests share: spans and an OTLP protobuf body of them
(``bench/_otlp_spans.py``), and sending one body to each server at the same moment (the
``servers`` fixture: conftest.py)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bench._otlp_spans import body, span  # noqa: E402
from bench.pg_scaleout import Server  # noqa: E402

__all__ = ["Server", "body", "post_at_once", "span"]


def post_at_once(pair: list[tuple[Server, bytes]]) -> None:
    """Post each body to its server, released together by a barrier; both must answer 200."""
    import httpx

    start = threading.Barrier(len(pair))
    answers: list[int] = []

    def send(server: Server, content: bytes) -> None:
        with httpx.Client() as client:
            start.wait()
            r = client.post(
                server.url + "/v1/traces",
                content=content,
                headers={"Content-Type": "application/x-protobuf"},
                timeout=120,
            )
            answers.append(r.status_code)

    threads = [threading.Thread(target=send, args=p) for p in pair]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert answers == [200] * len(pair)
