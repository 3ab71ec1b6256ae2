"""``flightlog reliability``: per-step and end-to-end reliability with intervals."""

from __future__ import annotations

import time
from pathlib import Path

import click

from flightlog.cli._common import (
    db_option,
    echo_json,
    errors_as_messages,
    open_store_for_cli,
    parse_since,
)

config_option = click.option(
    "--config",
    "config_path",
    default=None,
    help="flightlog.toml (default: $FLIGHTLOG_CONFIG, else ./flightlog.toml).",
)


@click.command("reliability")
@click.argument("workflow", required=False)
@click.option(
    "--since",
    default=None,
    help="Start of the window: 30d, 12h, or an ISO time (default: [reliability] window, else 30d).",
)
@click.option("--until", "until", default=None, help="End of the window (default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--html", "as_html", is_flag=True, help="Write an HTML page with charts.")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write to this file instead of standard output.",
)
@config_option
@db_option
def reliability(
    workflow: str | None,
    since: str | None,
    until: str | None,
    as_json: bool,
    as_html: bool,
    out: str | None,
    config_path: str | None,
    db: str,
) -> None:
    """Reliability per workflow and per step over a window of runs.

    For each workflow: the measured end-to-end rate of clean runs, each step's conditional
    success (of the runs that reached it), the product of the steps and the gap to the
    measured rate (correlated failures), 95% Wilson intervals on every rate, pass^k,
    expected failures per 1,000 runs with an upper bound, the failure share by root-cause
    step, agent and owner (from stored attributions), and the cost of failures. Degraded
    runs count as failures; unknown and running runs are left out. See docs/reliability.md.
    """
    from flightlog.reliability import reliability as compute
    from flightlog.reliability.render import html_document, slo_text, text
    from flightlog.reliability.settings import load_reliability_settings, owner_resolver

    if as_json and as_html:
        raise click.UsageError("choose one of --json and --html")
    with errors_as_messages():
        settings = load_reliability_settings(config_path)
        until_ns = parse_since(until) if until else time.time_ns()
        since_ns = parse_since(since) if since else (until_ns or 0) - settings.window_ns
        if since_ns is not None and until_ns is not None and since_ns >= until_ns:
            from flightlog.cli._common import fmt_time

            raise click.UsageError(
                f"the window starts ({fmt_time(since_ns)} UTC, --since) at or after it ends "
                f"({fmt_time(until_ns)} UTC, --until): no run can be in it; durations such as "
                "30d count back from now"
            )
        store = open_store_for_cli(db, readonly=True)
        try:
            report = compute(
                store,
                since_ns=since_ns,
                until_ns=until_ns,
                workflow=workflow,
                owners=owner_resolver(config_path),
                cost_per_failure=settings.cost_for,
            )
            from flightlog.reliability.slo import evaluate_all

            slos = [s for s in settings.slos if workflow is None or s.workflow == workflow]
            statuses = evaluate_all(store, slos, until_ns or time.time_ns())
        finally:
            store.close()
        if workflow is not None and not report.workflows[0].statuses:
            known = ", ".join(sorted_workflows(db)) or "none"
            click.echo(
                f"note: no runs of workflow {workflow!r} in this window (workflows: {known})",
                err=True,
            )
        if report.counted_hours > 24 * 7 and report.kept_hours == 0:
            click.echo(
                f"note: counted {report.counted_hours} hours of runs from the records; "
                "`flightlog watch` keeps the counts of finished hours, which makes this fast "
                "on large stores (docs/reliability.md)",
                err=True,
            )
        data = report.to_dict() | {"slos": [st.to_dict() for st in statuses]}
        if as_json:
            if out is None:
                echo_json(data)
                return
            import orjson

            rendered = orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()
        elif as_html:
            rendered = html_document(report)
        else:
            rendered = text(report) + ("\n" + slo_text(statuses) if statuses else "")
        if out is None:
            click.echo(rendered)
            return
        try:
            Path(out).write_text(rendered + "\n", encoding="utf-8")
        except OSError as exc:
            click.echo(f"error: cannot write {out}: {exc.strerror or exc}", err=True)
            raise SystemExit(1) from exc
        click.echo(f"wrote {out}")


def sorted_workflows(db: str) -> list[str]:
    store = open_store_for_cli(db, readonly=True)
    try:
        return sorted(store.workflows())[:20]
    finally:
        store.close()
