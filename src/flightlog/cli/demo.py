"""``flightlog demo``: record the claims-triage demo workflow and show its failure."""

from __future__ import annotations

import click

from flightlog.cli._common import db_option, errors_as_messages


@click.command()
@db_option
@click.option(
    "--runs",
    "n_ok",
    default=20,
    show_default=True,
    type=click.IntRange(3, 10_000),
    help="How many successful runs to record before the failing one.",
)
def demo(db: str, n_ok: int) -> None:
    """Record the claims-triage demo (offline, deterministic) and explain its failed run.

    Seven steps across six agents; N successful runs, then one that fails at step 4 of 7
    (validate_claim) because step 2 (search_policy) found no policy wording.
    """
    from flightlog import demo as demo_mod
    from flightlog.store import normalize_url

    with errors_as_messages():
        url = normalize_url(db)
        result = demo_mod.run_demo(url, n_ok=n_ok)
        for part in demo_mod.SECTIONS:
            part(result, click.echo)
