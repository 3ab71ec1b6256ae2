"""``flightlog detect RUN``: run the detectors on a recorded run and list its findings."""

from __future__ import annotations

import click

from flightlog.cli._common import db_option, echo_json, errors_as_messages, json_option
from flightlog.cli._safe import echo


@click.command("detect")
@click.argument("run_id")
@db_option
@json_option
@click.option("--dry-run", is_flag=True, help="Do not store the new findings.")
def detect(run_id: str, db: str, as_json: bool, dry_run: bool) -> None:
    """Run every detector (built-in, @flightlog.detector and flightlog.toml [detect]) on RUN,
    store new findings (idempotently) and list all of the run's findings by step."""
    from flightlog.cli._common import open_store_for_cli
    from flightlog.detect import detect as run_detect

    with errors_as_messages():
        store = open_store_for_cli(db)
        try:
            rid = store.resolve_run_id(run_id)
            findings = run_detect(store, rid, write=not dry_run)
            steps = {s.id: s for s in store.get_steps(rid)}
        finally:
            store.close()
    if as_json:
        echo_json([f.to_dict() for f in findings])
        return
    if not findings:
        echo(f"run {rid}: no findings")
        return
    echo(f"run {rid}: {len(findings)} finding(s)")
    for f in findings:
        s = steps.get(f.step_id or "")
        where = f"step {s.index} {s.name}" if s else "run"
        echo(f"  {f.severity:<8} {where:<28} {f.detector:<16} {f.message}")
