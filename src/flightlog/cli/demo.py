"""``flightlog demo``: record the claims-triage demo workflow and show its failure."""

from __future__ import annotations

import click

from flightlog.cli._common import errors_as_messages


@click.command()
@click.option(
    "--dir",
    "home",
    default=None,
    type=click.Path(file_okay=False),
    help="The demo's own directory: its store, flightlog.toml, postmortem and audit bundle "
    "[default: ./flightlog-demo]. A re-run replaces the previous demo there; a directory "
    "with other files is refused.",
)
@click.option(
    "--db",
    "db",
    default=None,
    help="Add the demo's runs to this store instead of the demo's own "
    "(sqlite:///file.db or postgresql://...). $FLIGHTLOG_URL is not used.",
)
@click.option(
    "--runs",
    "n_ok",
    default=20,
    show_default=True,
    type=click.IntRange(3, 10_000),
    help="How many successful runs to record before the failing one.",
)
def demo(home: str | None, db: str | None, n_ok: int) -> None:
    """Record the claims-triage demo (offline, deterministic) and explain its failed run.

    Seven steps across six agents; N successful runs, then one that fails at step 4 of 7
    (validate_claim) because step 2 (search_policy) found no policy wording. The demo records
    into its own store with its own flightlog.toml, in ./flightlog-demo, and prints the
    commands to explore it.
    """
    from flightlog import demo as demo_mod
    from flightlog.cli.runs import render_run
    from flightlog.store import normalize_url

    with errors_as_messages():
        url = normalize_url(db) if db else None
        result = demo_mod.run_demo(url, n_ok=n_ok, home=home, show_run=render_run)
        try:
            for part in demo_mod.SECTIONS:
                part(result, click.echo)
        finally:
            demo_mod.finish(result)
