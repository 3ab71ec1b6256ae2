"""``flightlog drill``: run a fire drill and check detection, attribution and paging."""

from __future__ import annotations

import sys

import click

from flightlog.cli._common import db_option, echo_json, errors_as_messages
from flightlog.errors import ConfigurationError


@click.command("drill")
@click.argument("drill_file", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--live", is_flag=True, help="Page the real configured channels instead of a local receiver."
)
@click.option(
    "--config",
    "config_path",
    default=None,
    help="flightlog.toml with teams and [[owners]] (default: the drill's config).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the drill report as JSON.")
@click.option(
    "--proxy", is_flag=True, help="Run an OpenAI-compatible fault proxy instead (see --upstream)."
)
@click.option(
    "--upstream",
    default=None,
    help="With --proxy: the model endpoint to forward to (e.g. https://api.openai.com/v1).",
)
@click.option(
    "--listen",
    default="127.0.0.1:8787",
    show_default=True,
    help="With --proxy: where the proxy listens.",
)
@click.option(
    "--fault",
    "proxy_faults",
    multiple=True,
    help="With --proxy: KIND[:PROBABILITY], repeatable (e.g. rate_limit:0.2).",
)
@click.option("--seed", default=0, show_default=True, help="With --proxy: the RNG seed.")
@db_option
def drill(
    drill_file: str | None,
    live: bool,
    config_path: str | None,
    as_json: bool,
    proxy: bool,
    upstream: str | None,
    listen: str,
    proxy_faults: tuple[str, ...],
    seed: int,
    db: str,
) -> None:
    """Run the fire drill in DRILL_FILE: the workflow with faults injected at named steps,
    then check that each fault was detected, the failure point is right, attribution names
    the injected step, and the step's owner was paged within the drill's time limit.

    Prints the drill report (detection rate, attribution accuracy, time to detect, alert
    latency, every miss) and exits with status 1 when an expectation failed, so it can run
    in CI. The result is recorded in the store given by --db and its audit ledger.
    See docs/drills.md.
    """
    with errors_as_messages():
        if proxy:
            from flightlog.drills.proxy import parse_fault_args, serve_proxy

            if not upstream:
                raise click.UsageError("--proxy needs --upstream URL")
            if not upstream.startswith(("http://", "https://")):
                raise click.UsageError(
                    f"--upstream {upstream!r} is not a URL; give the model endpoint, "
                    "e.g. https://api.openai.com/v1"
                )
            host, _, port = listen.rpartition(":")
            if not port.isdigit() or not 0 <= int(port) <= 65535:
                raise click.UsageError(
                    f"--listen {listen!r} is not HOST:PORT with a port from 0 to 65535 "
                    "(e.g. 127.0.0.1:8787)"
                )
            faults = parse_fault_args(proxy_faults)
            try:
                serve_proxy(upstream, faults, host=host or "127.0.0.1", port=int(port), seed=seed)
            except OSError as exc:  # the port is taken, or the address is not this host's
                raise ConfigurationError(
                    f"cannot listen on {listen}: {exc.strerror or exc}; choose another --listen"
                ) from exc
            return
        if drill_file is None:
            raise click.UsageError("give a DRILL_FILE (or --proxy)")
        from flightlog.app import open_store
        from flightlog.drills.runner import run_drill, text
        from flightlog.drills.spec import load_drill
        from flightlog.reliability.drills import record_drill

        spec = load_drill(drill_file)
        report = run_drill(spec, live=live, config_path=config_path)
        data = report.to_dict()
        home = open_store(db)
        try:
            data["id"] = record_drill(home, data)
        finally:
            home.close()
        if as_json:
            echo_json(data)
        else:
            click.echo(text(report))
        sys.exit(0 if report.passed else 1)
