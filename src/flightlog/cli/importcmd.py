"""``flightlog import FILE...``: import chat transcripts (Who&When format) as runs."""

from __future__ import annotations

import click

from flightlog.cli._common import db_option, echo_json, errors_as_messages, json_option


@click.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@db_option
@json_option
@click.option(
    "--workflow",
    default="transcripts",
    show_default=True,
    help="Workflow name for the imported runs.",
)
def import_(files: tuple[str, ...], db: str, as_json: bool, workflow: str) -> None:
    """Import multi-agent chat transcripts as failed runs, one step per message (agent = the
    speaker; consecutive messages joined by data edges), so `flightlog why` and `report` work
    on them. Each FILE is a JSON object with a "history" list of {name, role, content} (the
    Who&When benchmark format). Importing a file twice changes nothing."""
    from flightlog.cli._common import open_store_for_cli
    from flightlog.forensics.transcripts import import_transcripts

    with errors_as_messages():
        store = open_store_for_cli(db, create=True)  # importing may start a new store
        created = bool(getattr(store, "created", False))
        try:
            ids = import_transcripts(store, list(files), workflow=workflow)
        finally:
            store.close()
    if as_json:
        echo_json([{"file": f, "run_id": r} for f, r in zip(files, ids, strict=True)])
        return
    if created:
        click.echo(f"created a new store at {db}", err=True)
    for f, r in zip(files, ids, strict=True):
        click.echo(f"{r}  {f}")
    click.echo(f"imported {len(ids)} transcript(s) as runs of {workflow!r}")
