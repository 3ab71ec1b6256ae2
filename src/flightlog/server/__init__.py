"""The Flightlog server (``flightlog serve``): OTLP/HTTP ingestion, the REST API, a web view.

Needs ``pip install 'flightlog[server]'``. ``create_app(url)`` gives the ASGI application.
"""

from __future__ import annotations

from flightlog.server.app import create_app

__all__ = ["create_app"]
