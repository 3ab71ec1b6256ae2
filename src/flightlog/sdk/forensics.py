"""``flightlog.why`` and ``flightlog.replay`` on the store the SDK is configured with: the
forensics of ``flightlog.forensics`` and ``flightlog.sdk.replay`` take a store; these find it.

When the SDK sends to a Flightlog server (``http(s)://``), ``why`` asks the server instead:
``GET /api/v1/runs/{run}/attribution`` (the same attribution, computed on the server's store),
after flushing this process's records, with the key the SDK sends (or ``api_key``)."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from flightlog.errors import ConfigurationError, InputError, NotFoundError, StoreError
from flightlog.forensics.attribution import Attribution

if TYPE_CHECKING:
    from flightlog.store.base import Store

POLL_S = 0.2  # between asks while the server does not have the run, or has it running


def configured_store() -> tuple[Store, bool]:
    """The store the SDK writes to (flushed), and whether the caller must close it."""
    from flightlog.app import open_store
    from flightlog.sdk import state

    state.flush()
    store = state.configured_store()
    if store is not None:
        return store, False
    if state._disabled:
        raise ConfigurationError(
            "recording is off ($FLIGHTLOG_DISABLED=1, or the store could not be configured): "
            "no run was recorded, so there is none to read; `flightlog why RUN --db URL` "
            "reads a store"
        )
    url = _url()
    if _is_server(url):
        raise ConfigurationError(
            f"flightlog is configured to send records to {url}; replay reads the recorded "
            "run from a store: run it where the server's store is reachable "
            "(flightlog replay --db URL)"
        )
    return open_store(url, create=False), True  # reading never creates a store


def _url() -> str:
    from flightlog.sdk import state
    from flightlog.store import default_url

    return state.url or default_url()


def _is_server(url: str) -> bool:
    return url.split("://", 1)[0].lower() in ("http", "https")


def why(run_id: str, *, api_key: str | None = None, timeout: float = 30.0) -> Attribution:
    """Attribute ``run_id``'s failure using the configured store, or, when the SDK sends to a
    server, the server's attribution of it (see ``remote_why``)."""
    from flightlog.forensics.attribution import why as _why
    from flightlog.sdk import state

    if not state._disabled and _is_server(_url()):
        return remote_why(_url(), run_id, api_key=api_key, timeout=timeout)
    store, close = configured_store()
    try:
        return _why(store, run_id)
    finally:
        if close:
            store.close()


def remote_why(
    url: str, run_id: str, *, api_key: str | None = None, timeout: float = 30.0
) -> Attribution:
    """The attribution a Flightlog server at ``url`` computes for ``run_id``.

    First flushes this process's records until the server has acknowledged them (it
    acknowledges after its commit), then asks ``GET /api/v1/runs/{run}/attribution`` with
    ``api_key`` (default: the key the SDK sends, ``configure(api_key=...)`` or
    ``$FLIGHTLOG_API_KEY``), which needs the ``read`` scope (or ``admin``). While the server
    does not have the run yet (records still spooled here) or has it still running, asks
    again until ``timeout`` seconds have passed. Raises ``NotFoundError`` when the server has
    no such run (in the key's project), ``ConfigurationError`` for a refused key or a URL that
    is not a Flightlog server, ``StoreError`` when the server cannot be reached or answers
    with an error."""
    import httpx

    from flightlog.sdk import state

    if not isinstance(run_id, str) or not run_id.strip():
        raise InputError("why() needs a run id (32 hex digits, or a unique prefix of one)")
    run_id = run_id.strip()
    deadline = time.monotonic() + max(0.0, timeout)
    writer = state.configured_writer()
    sink = writer.sink if writer is not None else None
    state.flush(timeout)
    key = api_key or getattr(sink, "api_key", None) or os.environ.get("FLIGHTLOG_API_KEY")
    base = url.rstrip("/")
    base = base.removesuffix("/v1/traces")
    endpoint = f"{base}/api/v1/runs/{quote(run_id, safe='')}/attribution"
    headers = {"Accept": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key.strip()}"
    with httpx.Client(timeout=max(5.0, min(timeout, 60.0)), headers=headers) as client:
        while True:
            try:
                resp = client.get(endpoint)
            except httpx.HTTPError as exc:
                raise StoreError(
                    f"cannot reach the Flightlog server at {base} to attribute run {run_id}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            pending = _pending(sink)
            if resp.status_code == 200:
                att = Attribution.from_dict(_json(resp, endpoint))
                if att.status != "running" or _open_here(att.run_id):
                    return att
                if time.monotonic() >= deadline:
                    att.evidence.append(
                        f"the server still had the run running after {timeout:g} s"
                        + _undelivered(pending, sink)
                    )
                    return att  # what the embedded store says of a running run
            elif resp.status_code == 404:
                message = _error_message(resp)
                if message is None:
                    raise ConfigurationError(
                        f"{base} has no /api/v1/runs/{{run}}/attribution (HTTP 404): "
                        "flightlog.why() needs a Flightlog server (flightlog serve), not an "
                        "OpenTelemetry Collector"
                    )
                if not pending or time.monotonic() >= deadline:
                    raise NotFoundError(
                        f"the Flightlog server at {base} has no run {run_id}"
                        + (" in the key's project" if key else "")
                        + f" ({message})"
                        + _undelivered(pending, sink)
                    )
                if sink is not None:
                    sink.drain(min(1.0, max(0.0, deadline - time.monotonic())))
            elif resp.status_code in (401, 403):
                said = _error_message(resp) or resp.text[:200]
                raise ConfigurationError(
                    f"the Flightlog server at {base} refused to show run {run_id}'s "
                    f"attribution (HTTP {resp.status_code}: {said}); "
                    "flightlog.why() reads GET /api/v1/runs/{run}/attribution, which needs a "
                    "read key of the run's project (an ingest key cannot read): pass "
                    "flightlog.why(run_id, api_key=KEY) with a key from `flightlog keys create "
                    "NAME --scope read --project P`, or configure the SDK with an admin key"
                )
            elif resp.status_code == 400:
                raise InputError(_error_message(resp) or resp.text[:300])
            else:
                raise StoreError(
                    f"the Flightlog server at {base} answered HTTP {resp.status_code} for run "
                    f"{run_id}'s attribution: {_error_message(resp) or resp.text[:300]}"
                )
            time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))


def _json(resp: Any, endpoint: str) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError as exc:
        raise StoreError(f"{endpoint} did not answer JSON: {resp.text[:200]!r}") from exc
    if not isinstance(data, dict) or "run_id" not in data:
        raise StoreError(f"{endpoint} did not answer an attribution: {resp.text[:200]!r}")
    return data


def _error_message(resp: Any) -> str | None:
    """The message of the REST API's JSON error, None if the answer is not one."""
    try:
        data = resp.json()
        return str(data["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return None


def _pending(sink: Any) -> int:
    """Batches of this process's records the server has not acknowledged yet."""
    spooled = getattr(sink, "spooled", None)
    return int(spooled()[0]) if spooled is not None else 0


def _undelivered(pending: int, sink: Any) -> str:
    """What this process's sink did not get to the server, if anything."""
    rejected = int(getattr(sink, "rejected_batches", 0) or 0)
    if not pending and not rejected:
        return ""
    last = getattr(sink, "last_error", None)
    parts = []
    if pending:
        parts.append(f"{pending} batch(es) of records not delivered yet (in {sink.spool.dir})")
    if rejected:
        parts.append(f"{rejected} batch(es) refused by the server")
    return "; " + ", ".join(parts) + (f"; last error: {last}" if last else "")


def _open_here(run_id: str) -> bool:
    """Whether ``run_id`` is the run this context is recording (it cannot end while we wait)."""
    from flightlog.sdk.context import _run

    active = _run.get()
    return active is not None and active.id == run_id
