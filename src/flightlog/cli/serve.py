"""``flightlog serve``: the OTLP/HTTP endpoint, the REST API and the web view."""

from __future__ import annotations

import click

from flightlog.cli._common import db_option, errors_as_messages


@click.command("serve")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (0.0.0.0 for every interface).",
)
@click.option(
    "--port",
    default=4318,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (4318 is the OTLP/HTTP default).",
)
@db_option
@click.option(
    "--max-body-mb",
    default=32,
    show_default=True,
    type=click.IntRange(1, 4096),
    help="Largest accepted request body, after decompression (MiB); larger: 413.",
)
@click.option(
    "--queue-spans",
    default=50_000,
    show_default=True,
    type=click.IntRange(1, 10**8),
    help="Spans waiting to be written before /v1/traces answers 429.",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    help="A name the Host header may carry besides the loopback ones (repeatable; '*' for "
    "any). Requests for other names get 421 (DNS rebinding).",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Serve on a non-loopback address although the store has no API keys.",
)
def serve(
    host: str,
    port: int,
    db: str,
    max_body_mb: int,
    queue_spans: int,
    allowed_hosts: tuple[str, ...],
    insecure: bool,
) -> None:
    """Receive OpenTelemetry traces and serve the REST API and web view.

    POST /v1/traces takes OTLP/HTTP (protobuf or JSON, optionally gzip) from any
    OpenTelemetry exporter and answers only once the spans are stored in --db. Spans map
    onto runs and steps by the OTel GenAI and OpenInference conventions. Also serves
    /api/v1/ (runs, steps, lineage, findings, attribution), /openapi.json, /healthz, /readyz and the
    read-only web UI at / (runs, run pages with attribution and lineage, postmortems,
    /incidents, /audit; see docs/ui.md). Once API keys exist (flightlog keys), every
    endpoint but /healthz and /readyz needs Authorization: Bearer <key> (the web UI: sign
    in at /signin with a read key), and each key sees only its project (docs/security.md).
    Detection, attribution and alerting for ended runs run in a worker process of their own
    ([server] run_end = "process", the default; "thread" or $FLIGHTLOG_RUN_END=thread keeps
    them in the server; docs/pipeline.md). Needs: pip install 'flightlog[server]'.
    """
    with errors_as_messages():
        try:
            from flightlog.server.app import serve as run_server
        except ImportError as exc:
            from flightlog.errors import ConfigurationError

            raise ConfigurationError(
                f"flightlog serve needs the server extra: pip install 'flightlog[server]' ({exc})"
            ) from exc
        from flightlog.app import check_config
        from flightlog.respond.config import load_respond_config

        check_config()  # a bad flightlog.toml stops here, naming the line
        alerting = load_respond_config()
        if alerting.enabled:
            click.echo(
                f"flightlog: alerting through {len(alerting.channels)} channel(s) (flightlog.toml)",
                err=True,
            )
        else:
            click.echo(
                "flightlog: no alerting configured (no flightlog.toml with channels here or in "
                "$FLIGHTLOG_CONFIG): failed runs open no incident and alert nobody; see "
                "docs/alerting.md",
                err=True,
            )
        run_server(
            db,
            host=host,
            port=port,
            max_body=max_body_mb << 20,
            max_pending_spans=queue_spans,
            allowed_hosts=allowed_hosts,
            insecure=insecure,
        )
