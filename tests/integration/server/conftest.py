"""A real ``flightlog serve`` process on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(pred: Callable[[], object], timeout: float = 10.0, poll: float = 0.02) -> bool:
    """Whether ``pred()`` became true within ``timeout`` seconds (checked every ``poll``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(poll)
    return bool(pred())


@dataclass
class ServerProcess:
    db: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    env: dict[str, str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    store: str | None = None  # a store URL other than the SQLite file ``db``

    @property
    def store_url(self) -> str:
        return self.store or f"sqlite:///{self.db}"

    def start(self, *extra: str) -> ServerProcess:
        assert self.proc is None or self.proc.poll() is not None
        self.log = self.db.with_suffix(f".{time.time_ns()}.log")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flightlog",
                "serve",
                "--port",
                str(self.port),
                "--db",
                self.store_url,
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("wb"),
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(self.env or {})},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not start within 30 s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(db=tmp_path / "server.db", port=free_port())
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def server(server_factory: ServerProcess) -> ServerProcess:
    return server_factory.start()
