"""OpenTelemetry (OTLP) in and out.

- ``flightlog.otel.decode``: OTLP protobuf / OTLP-JSON -> runs, steps, edges, payloads,
  findings, mapping the OTel GenAI and OpenInference conventions (``docs/otel.md``).
- ``flightlog.otel.encode``: Flightlog records -> OTLP, used by the remote SDK.
- data edges of ingested traces come from ``flightlog.lineage``, the one lineage engine of every
  front door; step order from the store (``Store.write(..., reorder=...)``).

Needs ``pip install 'flightlog[otlp]'`` (OpenTelemetry's own ``opentelemetry-proto``).
"""
