"""Running the server: bind first, then say so; then one line per interval of what it did.

``run(app, host, port)`` binds the listening socket itself, so "address already in use" is a
clear error before anything is announced, and "listening on" is printed only once the port
is bound. While serving, a thread prints one line per interval (``$FLIGHTLOG_LOG_INTERVAL``
seconds, default 60) of what arrived: requests, spans stored and rejected, 429s, runs ended
and failed, and whether failed runs alert anyone. Quiet intervals print nothing.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
import threading
from typing import TYPE_CHECKING, Any

from flightlog.errors import ConfigurationError

if TYPE_CHECKING:
    from flightlog.store.base import Store

DEFAULT_INTERVAL = 60.0


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; a clear error when the port is taken."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=0)
    except socket.gaierror as exc:
        raise ConfigurationError(f"cannot listen on {host!r}: {exc.strerror}") from exc
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigurationError(
                f"port {port} on {host} is already in use (another flightlog serve, or an "
                "OpenTelemetry Collector?): stop that process or choose another --port"
            ) from exc
        if exc.errno == errno.EACCES:
            raise ConfigurationError(
                f"not allowed to listen on {host}:{port} (ports below 1024 need privileges): "
                "choose another --port"
            ) from exc
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


def _state(app: Any) -> Any:
    """The Starlette app's ``state`` (the app may be wrapped in middleware with ``.app``)."""
    seen = 0
    while app is not None and seen < 8:
        state = getattr(app, "state", None)
        if state is not None and hasattr(state, "ingestor"):
            return state
        app, seen = getattr(app, "app", None), seen + 1
    return None


def _say(line: str) -> None:
    print(f"flightlog: {line}", file=sys.stderr, flush=True)


def interval_from_env() -> float:
    raw = os.environ.get("FLIGHTLOG_LOG_INTERVAL", "")
    try:
        value = float(raw) if raw else DEFAULT_INTERVAL
    except ValueError as exc:
        raise ConfigurationError(
            f"$FLIGHTLOG_LOG_INTERVAL must be a number of seconds, got {raw!r}"
        ) from exc
    if value <= 0:
        raise ConfigurationError("$FLIGHTLOG_LOG_INTERVAL must be more than 0 seconds")
    return value


class Activity:
    """Counts what happened since the last line and prints it (see the module docstring)."""

    def __init__(self, ingestor: Any, store: Store, interval: float) -> None:
        self.ingestor = ingestor
        self.store = store
        self.interval = interval
        self._last = dict(vars(ingestor.stats))
        self._ended_runs: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="flightlog-activity", daemon=True)

    def start(self) -> None:
        self.ingestor.on_ended.append(self.on_runs_ended)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.on_runs_ended in self.ingestor.on_ended:
            self.ingestor.on_ended.remove(self.on_runs_ended)

    def on_runs_ended(self, run_ids: Any) -> None:
        """Called by the ingestor once a batch's run-end work is done (in this process or
        in the run-end worker): remember which runs ended."""
        with self._lock:
            self._ended_runs.extend(run_ids)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                line = self.line()
            except Exception as exc:  # the log line must never stop the server
                line = f"activity unavailable: {exc}"
            if line:
                _say(line)

    def _ended(self) -> tuple[int, int]:
        from flightlog.store import core

        with self._lock:
            ids, self._ended_runs = list(dict.fromkeys(self._ended_runs)), []
        if not ids:
            return 0, 0
        # One read per 500 runs (not one per run): the store is the ingestion writer's, and
        # every read holds its connection while the writer waits.
        with self.store.read() as tx:
            return len(ids), core.failed_among(tx, ids)

    def line(self) -> str | None:
        """What happened since the previous call, or None when nothing did."""
        now = vars(self.ingestor.stats)
        d = {k: now[k] - self._last.get(k, 0) for k in now if isinstance(now[k], int)}
        self._last = dict(now)
        ended, failed = self._ended()
        if not any(d.values()) and not ended:
            return None
        parts = [
            f"last {self.interval:g} s: {d.get('requests', 0)} request(s), "
            f"{d.get('spans_stored', 0)} span(s) stored, {d.get('spans_rejected', 0)} rejected"
        ]
        if d.get("overloaded"):
            parts.append(f"{d['overloaded']} answered 429 (queue full)")
        if d.get("write_errors"):
            parts.append(f"{d['write_errors']} write error(s)")
        runs = f"{ended} run(s) ended, {failed} failed"
        if failed and not alerting_configured():
            runs += (
                " (no alerting configured: no flightlog.toml with channels, so no incident "
                "was opened and nobody was told; see docs/alerting.md)"
            )
        parts.append(runs)
        return "; ".join(parts)


def alerting_configured() -> bool:
    """Whether a flightlog.toml with channels is in effect (what the run-end hook uses)."""
    try:
        from flightlog.config import find_config_file
        from flightlog.respond.config import load_respond_config

        path = find_config_file()
        return path is not None and load_respond_config(path).enabled
    except Exception:
        return False


def _check_store(check: Any) -> None:
    problem = check()
    if problem:
        _say(f"the store is damaged ({problem}); /readyz says not ready until it is restored")


def run(app: Any, *, host: str, port: int, store_url: str) -> None:
    """Bind, announce, log activity, and serve ``app`` with uvicorn until interrupted."""
    import uvicorn

    interval = interval_from_env()
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    state = _state(app)
    store = getattr(state, "store", None)
    new = " (a new, empty store: it did not exist)" if getattr(store, "created", False) else ""
    _say(f"listening on http://{host}:{bound} (OTLP: POST /v1/traces), store {store_url}{new}")
    check = getattr(store, "integrity_problem", None)
    if check is not None:  # reads every page once, off the request path; /readyz reports it
        threading.Thread(target=_check_store, args=(check,), daemon=True).start()
    activity = None
    if state is not None and store is not None:
        activity = Activity(state.ingestor, store, interval)
        activity.start()
    try:
        config = uvicorn.Config(app, log_level="warning", access_log=False)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        if activity is not None:
            activity.stop()
        sock.close()
