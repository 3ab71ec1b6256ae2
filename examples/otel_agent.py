"""An agent instrumented with OpenTelemetry only (no Flightlog import), sending its traces
to `flightlog serve` over OTLP/HTTP.

    pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http
    flightlog serve &                               # OTLP/HTTP on http://127.0.0.1:4318
    python examples/otel_agent.py                   # one trace = one run, each span a step

Spans follow the OpenTelemetry GenAI semantic conventions (gen_ai.*), as instrumentations of
OpenAI, LangChain, CrewAI and others emit them. The second claim fails: its retrieval finds
nothing and the validator raises. The endpoint is $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else
http://127.0.0.1:4318/v1/traces.
"""

import json
import os
import time
import urllib.request

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

endpoint = os.environ.get(
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/v1/traces"
)


def wait_for_server(traces_url: str, seconds: float = 30) -> None:
    """Wait until the server answers /readyz (it may still be starting in the background)."""
    ready = traces_url.rsplit("/v1/traces", 1)[0] + "/readyz"
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(ready, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"no Flightlog server answers at {ready}: start `flightlog serve`")
            time.sleep(0.2)


wait_for_server(endpoint)
provider = TracerProvider(resource=Resource.create({"service.name": "claims-agent"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("examples.otel_agent")

POLICY = {"water": ["HS-4.1 Sudden escape of water from a fixed installation is covered."]}


def search_policy(query: str) -> list[str]:
    with tracer.start_as_current_span("execute_tool search_policy") as span:
        span.set_attribute("gen_ai.operation.name", "execute_tool")
        span.set_attribute("gen_ai.tool.name", "search_policy")
        span.set_attribute("input.value", json.dumps({"query": query}))
        found = [c for topic, cs in POLICY.items() if topic in query for c in cs]
        span.set_attribute("output.value", json.dumps(found))
        return found


def assess(claim: str, clauses: list[str]) -> dict:
    with tracer.start_as_current_span("chat stand-in-1") as span:
        span.set_attribute("gen_ai.operation.name", "chat")
        span.set_attribute("gen_ai.request.model", "stand-in-1")
        span.set_attribute("gen_ai.usage.input_tokens", 40 + 10 * len(clauses))
        span.set_attribute("gen_ai.usage.output_tokens", 12)
        answer = {"covered": True, "cited": [c.split()[0] for c in clauses]}
        span.set_attribute("input.value", json.dumps({"claim": claim, "clauses": clauses}))
        span.set_attribute("output.value", json.dumps(answer))
        return answer


def validate(answer: dict) -> None:
    with tracer.start_as_current_span("validate_claim") as span:
        span.set_attribute("gen_ai.agent.name", "validator")
        if not answer["cited"]:
            raise ValueError("assessment cites no policy clause")


def triage(text: str) -> None:
    with tracer.start_as_current_span("invoke_agent claims-triage") as root:
        root.set_attribute("gen_ai.operation.name", "invoke_agent")
        root.set_attribute("gen_ai.agent.name", "claims-triage")
        try:
            validate(assess(text, search_policy(text)))
        except ValueError as exc:
            root.record_exception(exc)
            root.set_status(Status(StatusCode.ERROR, str(exc)))


triage("water came through the kitchen ceiling")
triage("a storm blew tiles off the roof")
provider.shutdown()  # sends what is buffered before the script exits
print(f"sent 2 traces to {endpoint}")
