"""``flightlog replay RUN --entry module:function``: re-run a recorded run, correcting steps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from flightlog.cli._common import db_option, echo_json, errors_as_messages, json_option


def parse_override(items: tuple[str, ...]) -> tuple[dict[Any, Any], set[str]]:
    """``STEP=VALUE`` (VALUE as JSON when it parses, else text) and ``STEP=live``. STEP is a
    step name, ``name#k`` (its k-th call) or a step index."""
    import orjson

    override: dict[Any, Any] = {}
    live: set[str] = set()
    for item in items:
        step, sep, raw = item.partition("=")
        if not sep or not step:
            raise click.BadParameter(f"{item!r}: expected STEP=VALUE or STEP=live")
        if raw == "live":
            live.add(step)
            continue
        try:
            value: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            value = raw
        override[int(step) if step.isdigit() else step] = value
    return override, live


def _check_steps(store: Any, run: Any, keys: list[Any]) -> None:
    """Every --override by name names a step of the run or of its workflow's runs (a step
    the original never reached may run in the replay); a misspelt name replayed the run
    unchanged and said "the failure remains"."""
    import time

    from flightlog.errors import InputError
    from flightlog.store import core

    steps = store.get_steps(run.id)
    names = {s.name for s in steps}
    for key in keys:
        name = key.partition("#")[0] if isinstance(key, str) else None
        if name is None or name in names:
            continue
        with store.read() as tx:
            if core.latest_step_kind(tx, run.workflow, name, time.time_ns()) is not None:
                continue
        known = ", ".join(f"{s.index} {s.name}" for s in sorted(steps, key=lambda s: s.index))
        raise InputError(
            f"--override {key}: no step named {name!r} in this run (its steps: "
            f"{known or 'none'}) or in other runs of {run.workflow!r}; give a step name, "
            "name#k or an index"
        )


@click.command("replay")
@click.argument("run_id")
@click.option(
    "--entry",
    required=True,
    help="The workflow function, module:function (e.g. examples.quickstart:triage), imported "
    "from the current directory, then sys.path.",
)
@click.option(
    "--override",
    "overrides",
    multiple=True,
    help="STEP=VALUE (JSON or text) replaces a step's output; STEP=live runs it for real. "
    "Repeatable. STEP is a name, name#k or an index.",
)
@click.option("--no-store", is_flag=True, help="Do not store the replayed run.")
@json_option
@db_option
def replay(
    run_id: str, entry: str, overrides: tuple[str, ...], no_store: bool, as_json: bool, db: str
) -> None:
    """Re-run RUN deterministically: the workflow function (--entry) is called with the run's
    recorded input and every step is answered from the recording, except the steps you
    override (a corrected value, or live). Shows whether the failure disappears.

    The replayed run is stored as a new run linked to the original (source "replay",
    attribute flightlog.replay_of); replays never page anyone and are left out of
    reliability figures. See docs/forensics.md.
    """
    import flightlog
    from flightlog.cli._common import open_store_for_cli
    from flightlog.drills.runner import load_entry
    from flightlog.sdk import state
    from flightlog.sdk.replay import replay as do_replay

    with errors_as_messages():
        override, live = parse_override(overrides)
        fn = load_entry(entry, [Path.cwd()])  # as `python -m` would find it
        store = open_store_for_cli(db)
        try:
            full = store.resolve_run_id(run_id)
            original = store.get_run(full)
            if original is not None:
                _check_steps(store, original, [*override, *live])
            writer = None
            if not no_store:
                flightlog.configure(db)
                writer = state.writer()
            try:
                result = do_replay(fn, full, override, store=store, live=live, record_to=writer)
            finally:
                if writer is not None:
                    flightlog.shutdown()
        finally:
            store.close()
    if as_json:
        echo_json(result.to_dict() | {"original_status": original.status if original else None})
        return
    was = original.status if original else "?"
    click.echo(f"replayed run {full} (was {was}): {result.status}")
    if result.reason:
        click.echo(f"  reason: {result.reason}")
    for c in result.failed_checks:
        click.echo(f"  failed check: {c}")
    for s in result.steps:
        click.echo(f"  {s['index']:>3} {s['name']} (call {s['occurrence']}): {s.get('source')}")
    if was == "failed" and result.succeeded:
        click.echo("the failure disappears with this correction")
    elif was == "failed":
        click.echo("the failure remains")
    if result.replay_run_id:
        click.echo(f"stored as run {result.replay_run_id} (flightlog show {result.replay_run_id})")
