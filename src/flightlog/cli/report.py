"""``flightlog report RUN``: a blameless postmortem of a run (Markdown, HTML or JSON)."""

from __future__ import annotations

from pathlib import Path

import click

from flightlog.cli._common import db_option, errors_as_messages
from flightlog.cli._safe import clean, json_safe


@click.command("report")
@click.argument("run_id")
@db_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "html", "json"]),
    default="md",
    show_default=True,
    help="Markdown, one self-contained HTML file, or JSON.",
)
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write to this file instead of standard output.",
)
def report(run_id: str, db: str, fmt: str, out: str | None) -> None:
    """Write a blameless postmortem of RUN: summary, impact, failure point (step k of N),
    root cause with evidence and confidence, causal chain, timeline, owners, similar earlier
    failures and action items. Captured values are escaped; the HTML runs no scripts."""
    from flightlog.cli._common import open_store_for_cli
    from flightlog.errors import InputError
    from flightlog.forensics.report import postmortem, render

    with errors_as_messages():
        store = open_store_for_cli(db)
        try:
            text = render(postmortem(store, run_id), fmt)
        finally:
            store.close()
        # Markdown is read in terminals and editors: no control or escape sequences in it.
        text = clean(text) if fmt == "md" else json_safe(text) if fmt == "json" else text
        if out is None:
            click.echo(text)
            return
        try:
            Path(out).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot write the report to {out}: {exc.strerror}") from exc
    click.echo(f"wrote {fmt} report to {out}")
