"""The Flightlog server (``flightlog serve``): OTLP/HTTP ingestion, the REST API, a web view.

Needs ``pip install 'flightlog[server]'``. ``create_app(url)`` gives the ASGI application.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so that the run-end worker (``python -m
    # flightlog.server.runend_worker``) loads none of the web stack.
    if name == "create_app":
        from flightlog.server.app import create_app

        return create_app
    raise AttributeError(name)
