"""The SDK's process-wide state: the configured sink and its writer.

``configure()`` opens the store (or the remote sink) at once, so a bad URL, a read-only or
corrupt store fails loudly there. Without ``configure()``, the first record configures the
default (``$FLIGHTLOG_URL`` or ``sqlite:///flightlog.db``); if that fails, recording turns
itself off and the error is logged and counted, never raised into user code.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from flightlog.errors import ConfigurationError
from flightlog.sdk.records import Submitter
from flightlog.sdk.writer import Writer

if TYPE_CHECKING:
    from flightlog.sdk.runend import RunEndWorker
    from flightlog.sdk.sink import Sink
    from flightlog.store.base import Store

log = logging.getLogger("flightlog")

_lock = threading.RLock()
_writer: Writer | None = None
_store: Store | None = None  # the local store the writer writes to (not in remote mode)
_configured = False
_disabled = False
service: str | None = None
url: str | None = None
payload_cap = 256 * 1024  # the configured cap, applied on the caller's side too
errors = 0  # internal errors swallowed to protect the host application
_retired_dropped = 0  # drops counted by writers replaced by configure() or shut down


# A context-local stand-in for the writer: counterfactual replay captures its re-executed
# run in memory instead of recording it.
writer_override: ContextVar[Submitter | None] = ContextVar(
    "flightlog_writer_override", default=None
)


def writer() -> Submitter | None:
    """Where records made in this context go: the stand-in if one is set, else the writer."""
    override = writer_override.get()
    return _writer if override is None else override


def configured_writer() -> Writer | None:
    """The background writer ``configure()`` made (None when recording is off)."""
    return _writer


def configured_store() -> Store | None:
    """The local store ``configure()`` opened and the writer writes to; None when records
    go to a server (``http(s)://``) or recording is off."""
    return _store if _writer is not None else None


def ensure_configured() -> bool:
    """Configure the default sink on first use. True when recording is on."""
    if writer_override.get() is not None:
        return True
    if _configured:
        return _writer is not None
    with _lock:
        if _configured:
            return _writer is not None
        try:
            configure()
        except Exception as exc:
            global errors, _disabled
            errors += 1
            _disabled = True
            _set(None, configured=True)
            log.error("flightlog could not configure its default store; recording is off: %s", exc)
        return _writer is not None


def _set(new: Writer | None, *, configured: bool) -> None:
    global _writer, _configured
    _writer = new
    _configured = configured


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigurationError(f"${name} must be an integer, got {raw!r}") from exc


def configure(
    url: str | None = None,
    *,
    service: str | None = None,
    payload_cap: int | None = None,
    queue_size: int | None = None,
    batch_size: int | None = None,
    spool_dir: str | None = None,
    api_key: str | None = None,
) -> None:
    """Choose where records go. Raises ``ConfigurationError``/``StoreError`` at once if wrong.

    ``url``: ``sqlite:///path.db`` (default ``$FLIGHTLOG_URL``, else ``sqlite:///flightlog.db``),
    ``postgresql://...``, or ``http(s)://host:4318`` for a Flightlog server or an OpenTelemetry
    Collector. ``payload_cap``: the largest captured value in bytes (default 256 KiB,
    ``$FLIGHTLOG_PAYLOAD_CAP``). ``api_key``: sent to a Flightlog server as ``Authorization:
    Bearer`` (default ``$FLIGHTLOG_API_KEY``; ``flightlog keys create NAME --scope ingest``).
    Calling it again flushes and replaces the previous sink.
    Set ``$FLIGHTLOG_DISABLED=1`` to turn recording off.
    """
    global _disabled
    from flightlog.sdk import state as me

    with _lock:
        if os.environ.get("FLIGHTLOG_DISABLED", "").lower() in ("1", "true", "yes"):
            shutdown()
            _set(None, configured=True)
            _disabled = True
            return
        from flightlog.store import default_url, normalize_url

        target = normalize_url(url or default_url())
        cap = (
            payload_cap
            if payload_cap is not None
            else _env_int("FLIGHTLOG_PAYLOAD_CAP", 256 * 1024)
        )
        if cap < 1024:
            raise ConfigurationError(f"payload_cap must be at least 1024 bytes, got {cap}")
        scheme = target.split("://", 1)[0].lower()
        sink: Sink
        store: Store | None = None  # the local store; the remote sink's server has its own
        if scheme in ("http", "https"):
            try:
                from flightlog.sdk.remote import RemoteSink
            except ImportError as exc:
                raise ConfigurationError(
                    f"sending to {target} needs the OTLP extra: "
                    f"pip install 'flightlog[otlp]' ({exc})"
                ) from exc
            sink = RemoteSink(target, spool_dir=spool_dir, api_key=api_key)
        else:
            from flightlog.app import open_store
            from flightlog.sdk.sink import StoreSink

            store = open_store(target)
            sink = StoreSink(store)
        _check_config_file()
        from flightlog import privacy

        scrubber = privacy.load()  # a bad [privacy] setting fails here, naming its line
        shutdown()
        run_end: RunEndWorker | None = None  # a server runs its own run-end processing
        if store is not None:
            from flightlog.sdk.runend import RunEndWorker

            run_end = RunEndWorker(store)
        new = Writer(
            sink,
            run_end=run_end,
            service=_service,
            max_queue=queue_size or _env_int("FLIGHTLOG_QUEUE_SIZE", 20_000),
            batch_size=batch_size or _env_int("FLIGHTLOG_BATCH_SIZE", 1_000),
            payload_cap=cap,
            privacy=scrubber,
        )
        me._store = store
        me.service = service or os.environ.get("FLIGHTLOG_SERVICE") or me.service
        me.url = target
        me.payload_cap = cap
        _disabled = False
        _set(new, configured=True)


def _service() -> str | None:
    return service


def _check_config_file() -> None:
    """Validate flightlog.toml (if there is one) now, so a mistake in it fails configure()
    rather than the first run's end. Raises ``ConfigurationError`` naming the line."""
    from flightlog.app import check_config

    check_config()


def flush(timeout: float | None = 30.0, *, hooks: bool = True) -> bool:
    """Block until every record made so far is durable and (unless ``hooks=False``) its
    run-end processing (detection, alerting) is done. True on success; False if anything
    was lost or the timeout passed."""
    w = _writer
    if w is None:
        return True
    started = time.monotonic()
    ok = w.flush(timeout, hooks=hooks)
    # The remote sink: delivered, not just spooled (a store's sink has nothing to drain).
    left = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
    return w.sink.drain(30.0 if left is None else left) == 0 and ok


def shutdown(timeout: float | None = 10.0) -> None:
    """Flush and stop the writer (called at exit)."""
    global _writer, _retired_dropped, _store
    with _lock:
        w = _writer
        if w is None:
            return
        try:
            w.close(timeout)
        except Exception:
            log.exception("flightlog shutdown failed")
        _retired_dropped += w.dropped
        with contextlib.suppress(Exception):
            w.sink.close()
        _writer = None
        _store = None


def stats() -> dict[str, Any]:
    """Counters: enqueued, written, dropped, pending, batches, write_failures, errors, ..."""
    w = _writer
    out: dict[str, Any] = {
        "url": url,
        "enabled": w is not None,
        "errors": errors,
        "enqueued": 0,
        "written": 0,
        "dropped": 0,
        "pending": 0,
        "batches": 0,
        "write_failures": 0,
        "last_error": None,
    }
    if w is not None:
        out.update(w.stats())
    out["dropped"] += _retired_dropped
    if w is not None:
        out["sink"] = w.sink.stats()
        # Records the remote sink could not even spool (its disk limit) are drops too.
        out["dropped"] += int(out["sink"].get("spool_dropped_records", 0) or 0)
    from flightlog import pipeline

    out["hook_errors"] = pipeline.hook_errors
    return out


def _at_exit() -> None:
    w = _writer
    if w is None:
        return
    try:
        started = time.monotonic()
        ok = w.flush(_exit_timeout())
        # The remote sink: send the spool while the exit timeout lasts, then say what is left.
        w.sink.drain(max(0.0, _exit_timeout() - (time.monotonic() - started)))
        w.sink.report_undelivered()
        if not ok:
            lost = w.abandon_pending()
            log.error(
                "flightlog could not make %d record(s) durable before exit (%s); they are lost",
                lost,
                w.last_error or "timed out",
            )
        dropped = w.dropped + _retired_dropped
        if dropped:
            log.warning("flightlog dropped %d record(s) in this process", dropped)
    except Exception:
        pass


def _exit_timeout() -> float:
    raw = os.environ.get("FLIGHTLOG_EXIT_TIMEOUT", "")
    try:
        return float(raw) if raw else 30.0
    except ValueError:
        return 30.0


def _after_fork_in_child() -> None:
    w = _writer
    if w is not None:
        w.after_fork_in_child()


atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
