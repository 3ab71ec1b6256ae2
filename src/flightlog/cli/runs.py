"""``flightlog runs`` and ``flightlog show RUN``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from flightlog.cli._common import (
    cut,
    db_option,
    echo_json,
    errors_as_messages,
    fmt_duration,
    fmt_time,
    json_option,
    open_store_for_cli,
    parse_since,
    run_argument,
)
from flightlog.cli._safe import echo
from flightlog.model import RUN_STATUSES, RunRecord, Step
from flightlog.store import RunQuery

if TYPE_CHECKING:
    from flightlog.store.base import Store, StoreReader


@click.command()
@db_option
@click.option("--workflow", "-w", help="Only runs of this workflow.")
@click.option(
    "--status",
    "-s",
    type=click.Choice(list(RUN_STATUSES)),
    help="Only runs with this outcome.",
)
@click.option("--since", help="Only runs started since: a duration (30m, 2h, 7d) or an ISO time.")
@click.option(
    "--limit",
    "-n",
    default=50,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="At most this many runs (the newest); the text output says how many more matched.",
)
@json_option
@click.option("--quiet", "-q", "quiet", is_flag=True, help="Print only run ids, one a line.")
def runs(
    db: str,
    workflow: str | None,
    status: str | None,
    since: str | None,
    limit: int,
    as_json: bool,
    quiet: bool,
) -> None:
    """List recorded runs, newest first."""
    with errors_as_messages():
        store = open_store_for_cli(db, readonly=True)
        query = RunQuery(workflow=workflow, status=status, since_ns=parse_since(since), limit=limit)
        found = store.list_runs(query)
        dropped = store.dropped_records()
        if dropped:
            echo(
                f"warning: recorders reported dropping {dropped} record(s) under overload; "
                "the runs below may be incomplete",
                err=True,
            )
        if as_json:
            echo_json([r.to_dict() for r in found])
            return
        if quiet:
            for r in found:
                echo(r.id)
            return
        if not found:
            known = sorted(store.workflows()) if workflow else []
            if workflow and workflow not in known:  # a typo, or another store
                shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
                echo(f"no runs match: no workflow {workflow!r} here (workflows: {shown or 'none'})")
                return
            echo("no runs" + (" match" if workflow or status or since else f" in {db}"))
            return
        echo(
            f"{'RUN':<14}{'WORKFLOW':<22}{'STATUS':<11}{'STARTED (UTC)':<21}{'DURATION':>9}  REASON"
        )
        from flightlog.forensics.transcripts import is_conversation

        for r in found:
            untimed = is_conversation(r)  # an imported transcript: order, not timing
            started = "unknown" if untimed else fmt_time(r.started_ns)
            took = "unknown" if untimed else fmt_duration(r.duration_ns)
            echo(
                f"{r.id[:12]:<14}{cut(r.workflow, 21):<22}{r.status:<11}"
                f"{started:<21}{took:>9}  "
                f"{cut(r.reason or '', 60)}",
                one_line=True,
            )
        if len(found) == limit:
            total = store.count_runs(query)
            if total > len(found):
                echo(
                    f"showing the newest {len(found)} of {total} runs; "
                    f"-n {total} shows all, --since/--workflow/--status narrow them"
                )


def failure_position(store: StoreReader, record: RunRecord) -> tuple[Step | None, int]:
    """The step where a failed run's failure surfaced, and N (see ``flightlog.forensics``)."""
    from flightlog.forensics.attribution import failure_position as position

    return position(store, record)


def render_run(store: Store, run_id: str) -> list[str]:
    """Text lines for ``flightlog show``: header, step tree, lineage, findings."""
    from flightlog.respond.owners import with_owners

    record = with_owners(store.get_record(store.resolve_run_id(run_id)))
    run = record.run
    from flightlog.forensics.transcripts import is_conversation

    if is_conversation(run):
        from flightlog.cli._transcript import render_transcript

        return render_transcript(store, record, *failure_position(store, record))
    lines = [
        f"run {run.id}  {run.workflow}" + (f" v{run.version}" if run.version else ""),
        f"status {run.status}  started {fmt_time(run.started_ns)}  "
        f"duration {fmt_duration(run.duration_ns)}" + (f"  owner {run.owner}" if run.owner else ""),
    ]
    failed_at, n = failure_position(store, record)
    if failed_at is not None:
        lines.append(
            f"{'degraded' if run.status == 'degraded' else 'failed'} at step "
            f"{failed_at.index} of {n} ({failed_at.name})"
            + (f": {run.reason}" if run.reason else "")
        )
        if failed_at.owner:
            lines.append(f"owner of that step: {failed_at.owner}")
    elif run.reason:
        lines.append(f"reason: {run.reason}")
    lines.append("")
    children: dict[str | None, list[Step]] = {}
    ids = {s.id for s in record.steps}
    for s in record.steps:
        parent = s.parent_id if s.parent_id in ids else None
        children.setdefault(parent, []).append(s)
    findings_by_step: dict[str | None, list[Any]] = {}
    for f in record.findings:
        findings_by_step.setdefault(f.step_id, []).append(f)

    lines.append(f"{'#':>3}  {'STEP':<28}{'KIND':<11}{'AGENT':<14}{'STATUS':<8}{'DURATION':>9}")

    def walk(parent: str | None, depth: int) -> None:
        for s in children.get(parent, []):
            mark = "✗" if s.status == "error" else ("…" if s.status == "running" else "✓")
            name = cut("  " * depth + s.name, 27)
            extra = ""
            if s.model:
                extra += f"  model={s.model}"
            if s.input_tokens or s.output_tokens:
                extra += f"  tokens={s.input_tokens or 0}/{s.output_tokens or 0}"
            lines.append(
                f"{s.index:>3}  {name:<28}{s.kind:<11}{cut(s.agent or '-', 13):<14}"
                f"{mark + ' ' + s.status:<8}"
                f"{fmt_duration(s.duration_ns):>9}{extra}"
            )
            if s.error:
                lines.append(
                    f"{'':>5}{'  ' * depth}error: {s.error.type}: {cut(s.error.message, 120)}"
                )
            for f in findings_by_step.get(s.id, []):
                lines.append(
                    f"{'':>5}{'  ' * depth}finding [{f.severity}] {f.detector}: "
                    f"{cut(f.message, 120)}"
                )
            walk(s.id, depth + 1)

    walk(None, 0)
    for f in findings_by_step.get(None, []):
        lines.append(f"     run finding [{f.severity}] {f.detector}: {cut(f.message, 120)}")
    by_id = {s.id: s for s in record.steps}
    if failed_at is not None:
        from flightlog.forensics.report import steps_not_reached

        missing = steps_not_reached(store, record)
        if missing:
            first = max((s.index for s in record.steps), default=0) + 1
            span = f"{first}" if len(missing) == 1 else f"{first}-{first + len(missing) - 1}"
            lines.append(f"{span:>3}  not reached: {', '.join(missing)}")

    def order(e: Any) -> tuple[int, int, str, str]:
        src, dst = by_id.get(e.source), by_id.get(e.target)
        return (src.index if src else 0, dst.index if dst else 0, e.kind, e.evidence or "")

    data_edges = sorted((e for e in record.edges if e.kind != "parent"), key=order)
    if data_edges:
        lines.append("")
        lines.append("lineage:")
        for e in data_edges:
            src, dst = by_id.get(e.source), by_id.get(e.target)
            src_name = f"{src.index} {src.name}" if src else e.source
            dst_name = f"{dst.index} {dst.name}" if dst else e.target
            via = f" via {e.detail}" if e.detail else ""
            lines.append(f"  {src_name} -> {dst_name}  ({e.kind}, {e.evidence}{via})")
    return lines


def record_to_dict(store: Store, record: RunRecord, *, payloads: bool = True) -> dict[str, Any]:
    """JSON form of a run with its steps (inputs/outputs decoded), edges and findings."""
    from flightlog.ledger.entry import REDACTED
    from flightlog.ledger.redact import redacted_runs
    from flightlog.payload import decode

    values: dict[str, bytes] = {}
    if payloads:
        hashes = [record.run.input_hash, record.run.output_hash]
        for s in record.steps:
            hashes += [s.input_hash, s.output_hash]
        values = store.get_payloads([h for h in hashes if h])
    out_run = record.run.to_dict()
    failed_at, n_steps = failure_position(store, record)
    out_run["failure_point"] = (
        {
            "step_id": failed_at.id,
            "index": failed_at.index,
            "name": failed_at.name,
            "of_steps": n_steps,
        }
        if failed_at
        else None
    )
    # After `audit redact` the references are gone: say so rather than show nothing.
    gone = REDACTED if payloads and redacted_runs(store, [record.run.id]) else None

    def value(h: str | None) -> Any:
        return decode(values.get(h)) if h else gone

    if payloads:
        out_run["input"] = value(record.run.input_hash)
        out_run["output"] = value(record.run.output_hash)
    steps = []
    for s in record.steps:
        d = s.to_dict()
        if payloads:
            d["input"] = value(s.input_hash)
            d["output"] = value(s.output_hash)
        steps.append(d)
    return {
        "run": out_run,
        "steps": steps,
        "edges": [e.to_dict() for e in record.edges],
        "findings": [f.to_dict() for f in record.findings],
    }


@click.command()
@run_argument
@db_option
@json_option
def show(run_id: str, db: str, as_json: bool) -> None:
    """Show RUN (an id or unique prefix): step tree, lineage edges and findings."""
    with errors_as_messages():
        store = open_store_for_cli(db, readonly=True)
        if as_json:
            from flightlog.respond.owners import with_owners

            record = with_owners(store.get_record(store.resolve_run_id(run_id)))
            echo_json(record_to_dict(store, record))
            return
        for line in render_run(store, run_id):
            echo(line)
