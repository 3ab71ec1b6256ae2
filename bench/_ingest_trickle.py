"""Spans in many small requests, and the server's CPU after the traffic stops.

    python bench/_ingest_trickle.py [--agents 8] [--traces 6] [--steps 40] [--after 60]

Agents (threads) record long conversation traces with the real OpenTelemetry SDK: a root
``invoke_agent`` span, then ``--steps`` alternating chat and tool spans, each chat's input
holding the whole conversation so far (as agent frameworks send it to the model), a few
milliseconds apart. Every agent's tracer provider exports through a ``BatchSpanProcessor``
with a 300 ms schedule delay into a real ``flightlog serve``, so each trace reaches the
server in many small requests, its root span last.

Reported: the server's CPU (process tree, user + system) while the traffic lasts and in each
5-second window after the last export returned, and how long until the server is idle (under
5% of a CPU for a whole window). Run-end work that grows with what is already stored shows
here as CPU that goes on long after the traffic.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _ingest_servers import count_rows, flightlog_spec, start, tree_cpu  # noqa: E402

WINDOW_S = 5.0


def _agent(url: str, agent: int, traces: int, steps: int, pause_s: float) -> int:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

    provider = TracerProvider(resource=Resource.create({"service.name": f"agent-{agent}"}))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=url), schedule_delay_millis=300)
    )
    tracer = provider.get_tracer("flightlog-bench-trickle")
    sent = 0
    for t in range(traces):
        conversation: list[dict[str, str]] = [
            {"role": "system", "content": "You are a research agent. Use tools."},
            {"role": "user", "content": f"agent {agent} task {t}: compile the report"},
        ]
        root = tracer.start_span(
            "invoke_agent researcher",
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "researcher",
                "input.value": json.dumps({"task": conversation[-1]["content"]}),
            },
        )
        ctx = set_span_in_context(root)
        for k in range(steps):
            if k % 2 == 0:
                span = tracer.start_span(
                    "chat gpt-4o-mini",
                    context=ctx,
                    kind=SpanKind.CLIENT,
                    attributes={
                        "gen_ai.operation.name": "chat",
                        "gen_ai.request.model": "gpt-4o-mini",
                        "gen_ai.usage.input_tokens": 100 + 40 * k,
                        "gen_ai.usage.output_tokens": 30,
                        "gen_ai.input.messages": json.dumps(conversation),
                    },
                )
                reply = f"call search for part {k} of task {t} (agent {agent})"
                span.set_attribute(
                    "gen_ai.output.messages",
                    json.dumps([{"role": "assistant", "content": reply}]),
                )
                conversation.append({"role": "assistant", "content": reply})
            else:
                result = json.dumps({"documents": [f"doc {agent}-{t}-{k}-{j}" for j in range(3)]})
                span = tracer.start_span(
                    "execute_tool search",
                    context=ctx,
                    attributes={
                        "gen_ai.operation.name": "execute_tool",
                        "gen_ai.tool.name": "search",
                        "gen_ai.tool.call.id": f"call-{agent}-{t}-{k}",
                        "gen_ai.tool.call.arguments": json.dumps({"q": f"part {k}"}),
                        "gen_ai.tool.call.result": result,
                    },
                )
                conversation.append({"role": "tool", "content": result})
            time.sleep(pause_s)
            span.end()
            sent += 1
        root.set_attribute("output.value", json.dumps({"report": f"done {agent}-{t}"}))
        root.set_status(Status(StatusCode.OK))
        root.end()
        sent += 1
    provider.shutdown()  # flushes what is queued, then returns
    return sent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--agents", type=int, default=8, help="concurrent agents (default 8)")
    p.add_argument("--traces", type=int, default=6, help="traces per agent (default 6)")
    p.add_argument("--steps", type=int, default=40, help="spans per trace below the root")
    p.add_argument("--pause-ms", type=float, default=50.0, help="time each span lasts (ms)")
    p.add_argument("--after", type=float, default=60.0, help="seconds to watch after traffic")
    p.add_argument("--json", dest="json_path", help="also write the figures as JSON")
    p.add_argument("--profile", metavar="FILE", help="run the server under py-spy, raw output")
    args = p.parse_args(argv)

    import logging

    logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="flightlog-trickle-") as d:
        workdir = Path(d)
        spec = flightlog_spec(workdir)
        if args.profile:
            import shutil
            import signal

            spec.command = [
                shutil.which("py-spy") or "py-spy", "record", "--format", "raw", "--rate", "100",
                "-o", str(Path(args.profile).resolve()), "--", *spec.command,
            ]  # fmt: skip
            spec.stop_signal = signal.SIGINT
        server = start(spec, workdir, startup_timeout=120)
        try:
            time.sleep(1.0)
            pid = server.proc.pid
            cpu0 = tree_cpu(pid)
            t0 = time.monotonic()
            counts: list[int] = []

            def run(a: int) -> None:
                counts.append(
                    _agent(spec.otlp_url, a, args.traces, args.steps, args.pause_ms / 1000)
                )

            threads = [threading.Thread(target=run, args=(a,)) for a in range(args.agents)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            traffic_s = time.monotonic() - t0
            cpu_traffic = tree_cpu(pid) - cpu0
            sent = sum(counts)
            windows: list[float] = []
            idle_after: float | None = None
            stored_at_end = spec.count()
            t_end = time.monotonic()
            while time.monotonic() - t_end < args.after:
                c0, w0 = tree_cpu(pid), time.monotonic()
                time.sleep(WINDOW_S)
                share = (tree_cpu(pid) - c0) / (time.monotonic() - w0)
                windows.append(share)
                if share < 0.05 and idle_after is None:
                    idle_after = time.monotonic() - t_end - WINDOW_S
                    break
            stored = spec.count()
            runs = count_rows(workdir / "flightlog.db", "runs")
        finally:
            server.stop()
    load = os.getloadavg()[0]
    out = {
        "spans_sent": sent,
        "spans_stored": stored,
        "stored_when_traffic_ended": stored_at_end,
        "runs": runs,
        "traffic_s": round(traffic_s, 2),
        "server_cpu_during_traffic_s": round(cpu_traffic, 2),
        "server_cpu_us_per_span": round(cpu_traffic * 1e6 / max(sent, 1)),
        "cpu_share_per_window_after": [round(w, 2) for w in windows],
        "idle_after_s": None if idle_after is None else round(max(idle_after, 0.0), 1),
        "load_avg": round(load, 1),
    }
    print(json.dumps(out, indent=2))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
