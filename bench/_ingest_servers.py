"""The servers under test: how to install, start, probe and count each one.

Peers live in their own virtual environments under a cache directory outside the repository
(``$FLIGHTLOG_BENCH_CACHE``, default ``~/.cache/flightlog-bench``), created on first use
with ``--install``; they are never dependencies of Flightlog.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

CACHE_DIR = Path(
    os.environ.get("FLIGHTLOG_BENCH_CACHE", Path.home() / ".cache" / "flightlog-bench")
)

# The versions measured in docs/benchmarks.md; --install installs exactly these.
PEER_PACKAGES = {
    "phoenix": ["arize-phoenix==20.26.1"],
    "mlflow": ["mlflow==3.17.2"],
}
PEER_DISTRIBUTION = {"phoenix": "arize-phoenix", "mlflow": "mlflow"}


class BenchError(Exception):
    """A server could not be installed, started or probed."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def venv_dir(peer: str) -> Path:
    return CACHE_DIR / f"{peer}-venv"


def venv_bin(peer: str, name: str) -> Path:
    return venv_dir(peer) / "bin" / name


def ensure_venv(peer: str, *, install: bool) -> str:
    """The peer's venv, created and filled if ``install``; returns the peer's version."""
    python = venv_bin(peer, "python")
    dist = PEER_DISTRIBUTION[peer]
    probe = [str(python), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"]
    if python.exists():
        done = subprocess.run(probe, capture_output=True, text=True)
        if done.returncode == 0:
            return done.stdout.strip()
    if not install:
        raise BenchError(
            f"{peer} is not installed in {venv_dir(peer)}; rerun with --install to create its "
            f"virtual environment there (pip install {' '.join(PEER_PACKAGES[peer])})"
        )
    print(f"installing {peer} into {venv_dir(peer)} ...", file=sys.stderr, flush=True)
    venv_dir(peer).parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv_dir(peer))], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES[peer]], check=True)
    done = subprocess.run(probe, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def count_rows(db: Path, table: str) -> int:
    """Rows in ``table`` of the SQLite file ``db`` (0 while the file or table is missing)."""
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc) or "locked" in str(exc):
            return 0
        raise


@dataclass
class ServerSpec:
    """How to run one server: its command, environment, OTLP endpoint and stored-span count."""

    name: str
    label: str
    command: list[str]
    env: dict[str, str]
    port: int
    health_path: str
    headers: dict[str, str]
    count: Callable[[], int]
    store: str
    version: str = ""
    stop_signal: int = signal.SIGTERM

    @property
    def otlp_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"


def byte_compile(package: str = "flightlog") -> None:
    """Byte-compile the ``package`` this Python imports, as ``pip install`` does for an
    installed package (the peers' venvs are compiled so). From an editable checkout with
    ``PYTHONDONTWRITEBYTECODE=1`` (set on this project's machines) every process would
    otherwise compile every module it imports at each start: the server's run-end worker
    costs about 0.5 s of CPU more, charged to the spans of a short run."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is not None and spec.origin:
        compileall.compile_dir(str(Path(spec.origin).parent), quiet=1)


def flightlog_spec(workdir: Path, *, api_key: bool = False) -> ServerSpec:
    """Flightlog's server (its sources byte-compiled first, ``byte_compile``); with
    ``api_key``, its store has an ingest key and every export sends it (``Authorization:
    Bearer``), so the cost of authentication is measured."""
    import importlib.metadata

    byte_compile()

    port = free_port()
    db = workdir / "flightlog.db"
    headers: dict[str, str] = {}
    if api_key:
        made = subprocess.run(
            [sys.executable, "-m", "flightlog", "keys", "create", "bench", "--scope", "ingest",
             "--db", f"sqlite:///{db}"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        headers["Authorization"] = f"Bearer {made.stdout.strip()}"
    try:
        version = importlib.metadata.version("flightlog")
    except importlib.metadata.PackageNotFoundError:
        version = "dev"
    return ServerSpec(
        name="flightlog-keys" if api_key else "flightlog",
        label="Flightlog (API key)" if api_key else "Flightlog",
        command=[
            sys.executable,
            "-m",
            "flightlog",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--db",
            f"sqlite:///{db}",
        ],
        env={},
        port=port,
        health_path="/healthz",
        headers=headers,
        count=lambda: count_rows(db, "steps"),
        store=f"SQLite {db.name} (steps)",
        version=version,
    )


def phoenix_spec(workdir: Path, version: str) -> ServerSpec:
    port = free_port()
    db = workdir / "phoenix.db"
    return ServerSpec(
        name="phoenix",
        label="Arize Phoenix",
        command=[str(venv_bin("phoenix", "phoenix")), "serve"],
        env={
            "PHOENIX_PORT": str(port),
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_GRPC_PORT": str(free_port()),
            "PHOENIX_WORKING_DIR": str(workdir),
            "PHOENIX_TELEMETRY_ENABLED": "false",
        },
        port=port,
        health_path="/healthz",
        headers={},
        count=lambda: count_rows(db, "spans"),
        store=f"SQLite {db.name} (spans)",
        version=version,
    )


def mlflow_spec(workdir: Path, version: str) -> ServerSpec:
    port = free_port()
    db = workdir / "mlflow.db"
    return ServerSpec(
        name="mlflow",
        label="MLflow",
        command=[
            str(venv_bin("mlflow", "mlflow")),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{db}",
            "--default-artifact-root",
            (workdir / "artifacts").as_uri(),
        ],
        env={"MLFLOW_ENABLE_TELEMETRY": "false", "DO_NOT_TRACK": "true"},
        port=port,
        health_path="/health",
        headers={"x-mlflow-experiment-id": "0"},
        count=lambda: count_rows(db, "spans"),
        store=f"SQLite {db.name} (spans)",
        version=version,
    )


# --- running a server ---------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out.extend(int(c) for c in f.read().split())
    except OSError:
        pass
    return out


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its live descendants."""
    total = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        except (OSError, IndexError, ValueError):
            continue
        stack.extend(_children(p))
    return total / os.sysconf("SC_CLK_TCK")


def tree_rss(pid: int) -> int:
    """Resident set size in bytes of ``pid`` and all its descendants (Linux /proc)."""
    total = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            continue
        stack.extend(_children(p))
    return total


@dataclass
class RunningServer:
    spec: ServerSpec
    proc: subprocess.Popen[bytes]
    log: Path
    peak_rss: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _sampler: threading.Thread | None = None

    def sample_rss(self, interval: float = 0.05) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                self.peak_rss = max(self.peak_rss, tree_rss(self.proc.pid))
                self._stop.wait(interval)

        self._sampler = threading.Thread(target=loop, daemon=True)
        self._sampler.start()

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        self._stop.set()
        if self._sampler:
            self._sampler.join()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, self.spec.stop_signal)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def start(spec: ServerSpec, workdir: Path, *, startup_timeout: float) -> RunningServer:
    """Start ``spec`` in its own process group and wait until its health endpoint answers."""
    log = workdir / f"{spec.name}.log"
    env = {**os.environ, **spec.env}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            spec.command,
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = RunningServer(spec, proc, log)
    url = f"http://127.0.0.1:{spec.port}{spec.health_path}"
    deadline = time.monotonic() + startup_timeout
    while True:
        if proc.poll() is not None:
            raise BenchError(
                f"{spec.label} exited with status {proc.returncode} while starting "
                f"({' '.join(spec.command)}); last lines of {log}:\n{server.log_tail()}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status < 500:
                    return server
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise BenchError(
                f"{spec.label} did not answer {url} within {startup_timeout:.0f} s; "
                f"last lines of {log}:\n{server.log_tail()}"
            )
        time.sleep(0.2)
