"""``flightlog.why`` and ``flightlog.replay`` on the store the SDK is configured with: the
forensics of ``flightlog.forensics`` and ``flightlog.sdk.replay`` take a store; these find it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flightlog.errors import ConfigurationError
from flightlog.forensics.attribution import Attribution

if TYPE_CHECKING:
    from flightlog.store.base import Store


def configured_store() -> tuple[Store, bool]:
    """The store the SDK writes to (flushed), and whether the caller must close it."""
    from flightlog.app import open_store
    from flightlog.sdk import state
    from flightlog.store import default_url

    state.flush()
    store = state.configured_store()
    if store is not None:
        return store, False
    if state._disabled:
        raise ConfigurationError(
            "recording is off ($FLIGHTLOG_DISABLED=1, or the store could not be configured): "
            "no run was recorded, so there is none to attribute; `flightlog why RUN --db URL` "
            "reads a store"
        )
    url = state.url or default_url()
    if url.split("://", 1)[0].lower() in ("http", "https"):
        raise ConfigurationError(
            f"flightlog is configured to send records to {url}; attribution needs a store: "
            "run `flightlog why RUN --db URL` against the server's store instead"
        )
    return open_store(url, create=False), True  # reading never creates a store


def why(run_id: str) -> Attribution:
    """Attribute ``run_id``'s failure using the configured store."""
    from flightlog.forensics.attribution import why as _why

    store, close = configured_store()
    try:
        return _why(store, run_id)
    finally:
        if close:
            store.close()
