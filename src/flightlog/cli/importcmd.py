"""``flightlog import FILE...``: import conversation logs (Who&When, chat, AutoGen) as runs."""

from __future__ import annotations

import click

from flightlog.cli._common import db_option, echo_json, errors_as_messages, json_option

_FORMATS = ("auto", "whowhen", "chat", "autogen")


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
@click.option(
    "--format",
    "fmt",
    type=click.Choice(_FORMATS),
    default="auto",
    show_default=True,
    help="whowhen: an object with a 'history' list (messages with name, or only role as in "
    "Magentic-One logs); chat: a list of {name, role, content} messages (OpenAI chat format, "
    "tool calls included); autogen: AG2 group-chat or AutoGen AgentChat messages; auto: by shape.",
)
@click.option(
    "--outcome",
    type=click.Choice(["failed", "succeeded", "unknown"]),
    default="failed",
    show_default=True,
    help="The outcome the imported runs get (failure logs by default).",
)
def import_(
    files: tuple[str, ...], db: str, as_json: bool, workflow: str, fmt: str, outcome: str
) -> None:
    """Import multi-agent conversation logs as runs, one step per message (agent = the
    speaker; an execution result is attributed to the author of the code it ran; lineage from
    that author and from instructions to their addressee), so `flightlog why`, `show` and
    `report` work on them. Every file is checked before any is written; importing a file
    twice changes nothing."""
    from flightlog.app import record_ended
    from flightlog.cli._common import open_store_for_cli
    from flightlog.forensics.transcripts import read_transcripts

    with errors_as_messages():
        store = open_store_for_cli(db, create=True)  # importing may start a new store
        created = bool(getattr(store, "created", False))
        try:
            batches = read_transcripts(list(files), workflow=workflow, fmt=fmt, status=outcome)
            ids = record_ended(store, batches)
        finally:
            store.close()
    if as_json:
        echo_json([{"file": f, "run_id": r} for f, r in zip(files, ids, strict=True)])
        return
    if created:
        click.echo(f"created a new store at {db}", err=True)
    for f, r in zip(files, ids, strict=True):
        click.echo(f"{r}  {f}")
    click.echo(f"imported {len(ids)} conversation(s) as runs of {workflow!r}")
