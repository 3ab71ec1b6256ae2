"""``flightlog report RUN``: a blameless postmortem of a run (Markdown, HTML or JSON);
``flightlog report --period 7d``: the board report over a period (also PDF)."""

from __future__ import annotations

from pathlib import Path

import click

from flightlog.cli._common import db_option, errors_as_messages
from flightlog.cli._safe import clean, json_safe


@click.command("report")
@click.argument("run_id", metavar="[RUN]", required=False)
@db_option
@click.option(
    "--period",
    default=None,
    help="Write the board report over this period (7d, 30d, 12h) instead of a postmortem.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "html", "json", "pdf"]),
    default="md",
    show_default=True,
    help="Markdown, one self-contained HTML file, JSON, or (board report) PDF.",
)
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write to this file instead of standard output (required for pdf).",
)
@click.option(
    "--config",
    "config_path",
    default=None,
    help="flightlog.toml (SLOs, costs, owners) for the board report.",
)
def report(
    run_id: str | None,
    db: str,
    period: str | None,
    fmt: str,
    out: str | None,
    config_path: str | None,
) -> None:
    """Write a blameless postmortem of RUN: summary, impact, failure point (step k of N),
    root cause with evidence and confidence, causal chain, timeline, owners, similar earlier
    failures and action items. Captured values are escaped; the HTML runs no scripts.

    With --period instead of RUN, write the board report: reliability and its trend per
    workflow, SLO status, incidents with time to detect/acknowledge/resolve, failures by
    root-cause owner, the cost of failures, fire drills and the audit ledger's state, with
    every term explained (docs/reliability.md). --format pdf prints it with headless
    Chromium.
    """
    from flightlog.cli._common import open_store_for_cli
    from flightlog.errors import InputError

    with errors_as_messages():
        if period is not None:
            if run_id is not None:
                raise click.UsageError("give a RUN for a postmortem or --period, not both")
            _board(db, period, fmt, out, config_path)
            return
        if run_id is None:
            raise click.UsageError("give a RUN (postmortem) or --period 7d (board report)")
        if not run_id.strip():
            raise click.BadParameter(
                "empty; give a run id (32 hex digits) or a unique prefix of one "
                "(`flightlog runs` lists them)",
                param_hint="'RUN'",
            )
        if fmt == "pdf":
            raise click.UsageError("--format pdf is for the board report (--period)")
        from flightlog.forensics.report import postmortem, render

        store = open_store_for_cli(db, readonly=True)
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


def _board(db: str, period: str, fmt: str, out: str | None, config_path: str | None) -> None:
    from flightlog._durations import parse_duration_ns
    from flightlog.cli._common import open_store_for_cli
    from flightlog.errors import InputError
    from flightlog.reliability.board import board_report, html, pdf, render

    try:
        period_ns = parse_duration_ns(period, units=("h", "d", "w"))
    except InputError:
        period_ns = 0
    if period_ns <= 0:
        raise click.BadParameter(f"{period!r} is not a period such as 7d, 30d, 12h or 2w")
    store = open_store_for_cli(db, readonly=True)
    try:
        rep = board_report(store, period_ns=period_ns, config_path=config_path)
    finally:
        store.close()
    if fmt == "pdf":
        if out is None:
            raise click.UsageError("--format pdf needs --out FILE")
        pdf(html(rep), Path(out))
        click.echo(f"wrote pdf board report to {out}")
        return
    text = render(rep, fmt)
    if out is None:
        click.echo(text)
        return
    try:
        Path(out).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write the report to {out}: {exc.strerror}") from exc
    click.echo(f"wrote {fmt} board report to {out}")
