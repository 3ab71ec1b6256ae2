"""OpenTelemetry (OTLP) in and out.

- ``flightlog.otel.decode``: OTLP protobuf / OTLP-JSON -> runs, steps, edges, payloads,
  findings, mapping the OTel GenAI and OpenInference conventions (``docs/otel.md``).
- ``flightlog.otel.encode``: Flightlog records -> OTLP, used by the remote SDK.
- ``flightlog.otel.lineage``: step order and content-inferred data edges for ingested traces.

Needs ``pip install 'flightlog[otlp]'`` (OpenTelemetry's own ``opentelemetry-proto``).
"""
