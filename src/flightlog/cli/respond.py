"""Response commands: ``owners explain``, ``incidents``, ``incident show|ack|resolve``,
``alerts`` and ``watch``. Each parses, calls one library function, renders."""

from __future__ import annotations

import contextlib
import getpass
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from flightlog.cli._common import (
    cut,
    db_option,
    echo_json,
    errors_as_messages,
    fmt_time,
    json_option,
    open_store_for_cli,
    parse_since,
)
from flightlog.cli._safe import echo

if TYPE_CHECKING:
    from flightlog.store.base import Store

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="flightlog.toml to read (default: $FLIGHTLOG_CONFIG, else ./flightlog.toml).",
)


_F = TypeVar("_F", bound=Callable[..., Any])


def _limit_option(default: int) -> Callable[[_F], _F]:
    """--limit N of a listing: 1 to 100,000, as ``runs -n``."""
    return click.option(
        "--limit",
        type=click.IntRange(1, 100_000),
        default=default,
        show_default=True,
        help="At most this many.",
    )


NEVER_RAN = (
    "none: alerting has never run on this store (runs that end without a flightlog.toml "
    "open no incident; see docs/alerting.md)"
)


def _has_respond_tables(store: Store, ensure_schema: Any) -> bool:
    """Whether the response engine ever ran on ``store`` (opened read-only, it is not
    migrated: a store it never ran on has no incidents or notifications to show)."""
    from flightlog.errors import StoreSchemaError

    try:
        ensure_schema(store)
    except StoreSchemaError as exc:
        if exc.have == 0:
            return False
        raise
    return True


def _engine(db: str, config_path: str | None) -> Any:
    from flightlog.respond.engine import open_engine

    return open_engine(open_store_for_cli(db), config_path)


# -- owners -----------------------------------------------------------------------------------
@click.group("owners")
def owners() -> None:
    """Who owns a workflow or a step: code owners, then [[owners]] rules (last match wins)."""


@owners.command("explain")
@click.option("--workflow", "-w", required=True, help="Workflow name.")
@click.option("--step", "-s", default=None, help="Step name (omit for the workflow's owner).")
@click.option("--agent", "-a", default=None, help="Agent name of the step.")
@click.option("--tool", "-t", default=None, help="Tool name, when the step is a tool call.")
@click.option(
    "--owner",
    "code_owner",
    default=None,
    help="An owner= given in code; it takes precedence over the rules.",
)
@config_option
@json_option
def owners_explain(
    workflow: str,
    step: str | None,
    agent: str | None,
    tool: str | None,
    code_owner: str | None,
    config_path: str | None,
    as_json: bool,
) -> None:
    """Show which ownership rule decides the owner (and which it overrode)."""
    with errors_as_messages():
        from flightlog.respond.config import load_respond_config
        from flightlog.respond.owners import explain

        match = explain(
            load_respond_config(config_path),
            workflow=workflow,
            step=step,
            agent=agent,
            tool=tool,
            code_owner=code_owner,
        )
        if as_json:
            echo_json(match.to_dict())
        else:
            echo(match.explain())


# -- incidents ---------------------------------------------------------------------------------
def _slo_name(i: Any) -> str | None:
    """The SLO an incident is about (its fingerprint is slo/<name>/<severity>), else None."""
    from flightlog.reliability.burn_alerts import SLO_PREFIX

    fp = str(i.fingerprint)
    return fp[len(SLO_PREFIX) :].rsplit("/", 1)[0] if fp.startswith(SLO_PREFIX) else None


def _incident_row(i: Any) -> str:
    slo = _slo_name(i)
    if slo is not None:  # a burning error budget, not a run's failure
        at = "" if i.root_cause_step == "(workflow)" else f" at {i.root_cause_step}"
        what = (
            f"SLO {slo} burning ({i.attribution.get('slo_severity') or i.severity}){at}; "
            f"owner {i.root_cause_team}"
        )
        return (
            f"#{i.id:<5} {i.status:<12} {cut(i.workflow, 20):<20} {'':<10} {what}  "
            f"opened {fmt_time(i.opened_ns)}"
        )
    return (
        f"#{i.id:<5} {i.status:<12} {cut(i.workflow, 20):<20} runs={i.run_count:<5} "
        f"fails at {i.failure_step}; root cause {i.root_cause_step} "
        f"({i.root_cause_team})  opened {fmt_time(i.opened_ns)}"
    )


@click.command("incidents")
@click.option(
    "--status",
    type=click.Choice(["open", "triggered", "acknowledged", "resolved"]),
    default=None,
    help="Only incidents in this state (open = not resolved).",
)
@click.option("--workflow", "-w", default=None, help="Only this workflow's incidents.")
@_limit_option(100)
@db_option
@json_option
def incidents(status: str | None, workflow: str | None, limit: int, db: str, as_json: bool) -> None:
    """List incidents (failures grouped by fingerprint), newest first."""
    with errors_as_messages():
        from flightlog.respond.incidents import list_incidents
        from flightlog.respond.schema import ensure_schema

        store = open_store_for_cli(db, readonly=True)
        if not _has_respond_tables(store, ensure_schema):
            click.echo("[]" if as_json else NEVER_RAN)
            return
        with store.read() as tx:
            found = list_incidents(tx, status=status, workflow=workflow, limit=limit)
        if as_json:
            echo_json([i.to_dict() for i in found])
        elif not found:
            echo("no incidents")
        else:
            for i in found:
                echo(_incident_row(i))


@click.group("incident")
def incident() -> None:
    """Show, acknowledge or resolve one incident."""


@incident.command("show")
@click.argument("incident_id")
@db_option
@json_option
def incident_show(incident_id: str, db: str, as_json: bool) -> None:
    """An incident with its attribution, timeline and notifications."""
    with errors_as_messages():
        from flightlog.respond import incidents as inc
        from flightlog.respond.schema import ensure_schema

        store = open_store_for_cli(db, readonly=True)
        ensure_schema(store)
        iid = inc.parse_id(incident_id)
        with store.read() as tx:
            i = inc.get(tx, iid)
            events = inc.timeline(tx, iid)
        if as_json:
            echo_json({**i.to_dict(), "timeline": [e.to_dict() for e in events]})
            return
        a = i.attribution
        echo(_incident_row(i))
        if _slo_name(i) is not None:
            echo(f"  fingerprint {i.fingerprint}: {i.workflow} / {i.root_cause_step} / SLOBurn")
            echo(f"  told: {i.root_cause_team} (the SLO's owner)")
            if a.get("summary"):
                echo(f"  {a['summary']}")
            if i.last_run_id:
                echo(f"  latest bad run {i.last_run_id}: flightlog why {i.last_run_id}")
        else:
            echo(
                f"  fingerprint {i.fingerprint}: {i.workflow} / fails at {i.failure_step} / "
                f"root cause {i.root_cause_step} / {i.error_class}"
            )
            echo(
                f"  paged: {i.root_cause_team} (root-cause owner); notified: "
                f"{i.workflow_team} (workflow owner)"
            )
            if a.get("summary"):
                echo(f"  {a['summary']}")
            echo(
                f"  confidence {float(a.get('confidence') or 0):.2f}; latest run "
                f"{i.last_run_id}; report: flightlog report {i.last_run_id}"
            )
        for e in a.get("evidence") or []:
            echo(f"    - {e}")
        if i.previous_id:
            echo(f"  follows incident #{i.previous_id}")
        if i.next_id:
            echo(f"  reopened as incident #{i.next_id}")
        echo("  timeline:")
        for e in events:
            detail = ", ".join(f"{k}={v}" for k, v in e.detail.items() if v is not None)
            echo(f"    {fmt_time(e.at_ns)}  {e.kind:<22} {e.actor:<10} {detail}")


def _transition(
    incident_id: str,
    to: str,
    db: str,
    config_path: str | None,
    by: str | None,
    note: str | None,
    as_json: bool,
) -> None:
    with errors_as_messages():
        from flightlog.respond.incidents import parse_id

        engine = _engine(db, config_path)
        i = engine.transition(parse_id(incident_id), to, actor=by or getpass.getuser(), note=note)
        if as_json:
            echo_json(i.to_dict())
        else:
            actor = i.acknowledged_by if to == "acknowledged" else i.resolved_by
            echo(f"incident #{i.id} {to} by {actor}")


@incident.command("ack")
@click.argument("incident_id")
@click.option("--by", default=None, help="Who acknowledges (default: the current user).")
@click.option("--note", default=None, help="A note for the timeline.")
@config_option
@db_option
@json_option
def incident_ack(
    incident_id: str,
    by: str | None,
    note: str | None,
    config_path: str | None,
    db: str,
    as_json: bool,
) -> None:
    """Acknowledge an incident: stops escalation; PagerDuty gets `acknowledge`."""
    _transition(incident_id, "acknowledged", db, config_path, by, note, as_json)


@incident.command("resolve")
@click.argument("incident_id")
@click.option("--by", default=None, help="Who resolves (default: the current user).")
@click.option("--note", default=None, help="A note for the timeline.")
@config_option
@db_option
@json_option
def incident_resolve(
    incident_id: str,
    by: str | None,
    note: str | None,
    config_path: str | None,
    db: str,
    as_json: bool,
) -> None:
    """Resolve an incident; PagerDuty gets `resolve` with the same dedup key."""
    _transition(incident_id, "resolved", db, config_path, by, note, as_json)


# -- alerts ------------------------------------------------------------------------------------
@click.command("alerts")
@click.option(
    "--status",
    type=click.Choice(["pending", "sending", "delivered", "failed"]),
    default=None,
    help="Only notifications in this state.",
)
@_limit_option(200)
@db_option
@json_option
def alerts(status: str | None, limit: int, db: str, as_json: bool) -> None:
    """The notification outbox and delivery history, newest first."""
    with errors_as_messages():
        from flightlog.respond.outbox import list_outbox
        from flightlog.respond.schema import ensure_schema

        store = open_store_for_cli(db, readonly=True)
        if not _has_respond_tables(store, ensure_schema):
            click.echo("[]" if as_json else NEVER_RAN)
            return
        found = list_outbox(store, status=status, limit=limit)
        if as_json:
            echo_json([e.to_dict() for e in found])
            return
        if not found:
            echo("no notifications")
        for e in found:
            when = fmt_time(e.delivered_ns or e.last_attempt_ns or e.created_ns)
            extra = f"  ({e.last_error})" if e.last_error and e.status != "delivered" else ""
            incs = ",".join(f"#{i}" for i in e.incident_ids)
            echo(
                f"{when}  {e.status:<9} {e.channel:<18} {e.kind:<11} "
                f"attempts={e.attempts} {incs}  {cut(e.summary, 80)}{extra}"
            )


# -- watch -------------------------------------------------------------------------------------
@click.command("watch")
@click.option("--interval", default=5.0, show_default=True, help="Seconds between polls.")
@click.option("--once", is_flag=True, help="One pass (process ended runs, flush, deliver).")
@click.option(
    "--since",
    default="24h",
    show_default=True,
    help="Process runs that ended this recently (30m, 2h, 7d or an ISO time).",
)
@config_option
@db_option
def watch(interval: float, once: bool, since: str, config_path: str | None, db: str) -> None:
    """Watch a store: turn ended runs into incidents and deliver alerts (embedded use)."""
    with errors_as_messages():
        from flightlog.app import check_config
        from flightlog.config import find_config_file
        from flightlog.errors import ConfigurationError
        from flightlog.reliability.burn_alerts import evaluate_and_count
        from flightlog.respond.engine import watch as run_watch

        # The whole file, as `flightlog serve` and configure() check it: a mistake in any
        # section stops here naming its line.
        check_config(config_path)
        engine = _engine(db, config_path)
        if not engine.config.rules:
            # No owner to route an incident to: the SDK and the server open no incident
            # without a configuration, and watch says so rather than fail on the first run.
            found = find_config_file(config_path)
            where = (
                f"{found} has no [[owners]] rules"
                if found is not None
                else "no flightlog.toml here and $FLIGHTLOG_CONFIG is not set"
            )
            raise ConfigurationError(
                f"no alerting configured ({where}): watch would open no incident and alert "
                "nobody. Give it a flightlog.toml with [teams], [channels] and [[owners]] "
                "(docs/alerting.md; examples/flightlog.toml is a small one): --config FILE"
            )
        if not engine.config.enabled:
            echo(
                "warning: no channels configured; incidents are kept but nobody is "
                "told (see docs/alerting.md)",
                err=True,
            )

        from flightlog import pipeline

        # Periodic work other capabilities registered (pipeline.every) runs on each pass;
        # this engine ticks itself.
        clock = pipeline.Clock(engine.store, respond=False)

        def report(touched: list[int], result: Any) -> None:
            clock.run_due()
            if touched or result.notifications or result.delivered or result.failed:
                echo(
                    f"incidents touched {sorted(set(touched))}; queued "
                    f"{result.notifications + result.escalations}, delivered "
                    f"{result.delivered}, retrying {result.retried}, failed {result.failed}"
                )
                sys.stdout.flush()

        if not once:  # a long-running process says what it watches before it goes quiet
            echo(
                f"flightlog watch: every {interval:g} s, runs that ended in {db} go to "
                f"incidents and alerts per {find_config_file(config_path)} (Ctrl-C stops)",
                err=True,
            )
        with contextlib.suppress(KeyboardInterrupt):
            run_watch(
                engine.store,
                engine,
                interval_s=interval,
                once=once,
                since_ns=parse_since(since),
                on_pass=report,
                before_tick=(evaluate_and_count,),
            )
