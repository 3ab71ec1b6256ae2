"""Haystack 3 (the same ``Agent`` in a ``Pipeline`` as apps/haystack_app.py), traced by
Haystack's own tracer on OpenTelemetry (``haystack.tracing`` with opentelemetry-haystack's
``OpenTelemetryTracer``), content tracing on (``HAYSTACK_CONTENT_TRACING_ENABLED=true``).
Runs from a venv of its own: see tests/data/otlp/README.md.
"""

from __future__ import annotations

from tests.integration.frameworks.apps import haystack_app

if __name__ == "__main__":
    haystack_app.main("haystack_tracing", own_tracer=True)
