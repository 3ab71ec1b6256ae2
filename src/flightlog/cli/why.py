"""``flightlog why RUN``: attribute a run's failure to its root-cause step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from flightlog.cli._common import (
    db_option,
    echo_json,
    errors_as_messages,
    json_option,
    run_argument,
)
from flightlog.cli._safe import echo


@click.command("why")
@run_argument
@db_option
@json_option
@click.option(
    "--confirm",
    is_flag=True,
    help="Confirm by counterfactual replay (needs --entry): correct each step on the chain "
    "in turn; the earliest correction that makes the run succeed is the decisive step.",
)
@click.option(
    "--entry",
    default=None,
    help="With --confirm: the workflow, module:function, imported from the current directory, "
    "then sys.path.",
)
@click.option(
    "--judge",
    "use_judge",
    is_flag=True,
    help="For an imported conversation, let the LLM judge configured in flightlog.toml "
    "([judge] url, model) rank the rules' candidates; the evidence reports its tokens.",
)
@click.option("--config", "config_path", default=None, help="Configuration file (flightlog.toml).")
def why(
    run_id: str,
    db: str,
    as_json: bool,
    confirm: bool,
    entry: str | None,
    use_judge: bool,
    config_path: str | None,
) -> None:
    """Explain why RUN failed: the failure point (step k of N), the root-cause step, its agent
    and owner, the causal chain, the evidence, a confidence and ranked alternatives.

    RUN is a run id or a unique prefix of one. --json prints Attribution.to_dict() (with
    "counterfactual" when a replay confirmed it). --confirm --entry module:function replays
    the run with each candidate step corrected (its output from a passing run) and records
    which step was decisive, in the store and the audit ledger.
    """
    from flightlog.cli._common import open_store_for_cli
    from flightlog.forensics import why as attribute
    from flightlog.forensics.counterfactual import (
        describe,
        latest_confirmation,
        record_confirmation,
    )

    if confirm and not entry:
        raise click.UsageError("--confirm needs --entry module:function (the workflow to replay)")
    if entry and not confirm:
        raise click.UsageError(
            "--entry is used only with --confirm (replay the run to confirm its root cause); "
            "add --confirm, or see flightlog replay"
        )
    with errors_as_messages():
        # Only --confirm records something (its outcome); otherwise why reads only.
        store = open_store_for_cli(db, readonly=not confirm)
        counterfactual: dict[str, Any] | None
        try:
            att = attribute(store, run_id)
            from flightlog.forensics.transcripts import is_conversation

            run = store.get_run(att.run_id)
            if use_judge and not (run is not None and is_conversation(run)):
                att.evidence.append("--judge: the LLM judge ranks imported conversations only")
            elif att.failed and run is not None and is_conversation(run):
                from flightlog.forensics.judge import judge_attribution, settings_from_config

                # --judge asks for it; [judge] enabled = true asks for it every time.
                settings = settings_from_config(config_path, force=use_judge)
                if settings is not None:
                    att = judge_attribution(store, att, settings)
            if confirm and entry:
                from flightlog.drills.runner import load_entry
                from flightlog.sdk.replay import decisive_step

                fn = load_entry(entry, [Path.cwd()])  # as `python -m` would find it
                outcome = decisive_step(fn, store, att.run_id).to_dict()
                root = att.root_cause.name if att.root_cause else None
                counterfactual = record_confirmation(store, att.run_id, outcome, root, entry)
            else:
                counterfactual = latest_confirmation(store, att.run_id)
        finally:
            store.close()
    if as_json:
        echo_json(att.to_dict() | ({"counterfactual": counterfactual} if counterfactual else {}))
        return
    echo(att.summary)
    if counterfactual is not None:
        echo(describe(counterfactual))
    if not att.failed or att.root_cause is None:
        for line in att.evidence:
            echo(f"  - {line}")
        return
    fp, rc = att.failure_point, att.root_cause
    echo("")
    if fp is not None:
        echo(f"failure point: step {fp.index} of {att.of_steps} {fp.name}" + _who(fp))
    echo(f"root cause:    step {rc.index} {rc.name}" + _who(rc))
    label = "hypothesis" if att.hypothesis else "attribution"
    echo(f"confidence:    {att.confidence:.2f} ({label}; method: {att.method})")
    if att.chain:
        echo("chain:         " + " -> ".join(f"{s.index} {s.name}" for s in att.chain))
    echo("evidence:")
    for line in att.evidence:
        echo(f"  - {line}")
    if att.alternatives:
        echo(
            "alternatives (evidence score; the root cause is the earliest step on the chain "
            "with strong evidence, not the highest score):"
        )
        for alt in att.alternatives:
            s = alt["step"]
            echo(f"  {alt['score']:.2f}  step {s['index']} {s['name']}: {alt['reason']}")


def _who(ref: object) -> str:
    agent = getattr(ref, "agent", None)
    owner = getattr(ref, "owner", None)
    parts = [f"agent {agent}" if agent else "", f"owner {owner}" if owner else ""]
    parts = [p for p in parts if p]
    return f" ({', '.join(parts)})" if parts else ""
