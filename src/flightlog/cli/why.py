"""``flightlog why RUN``: attribute a run's failure to its root-cause step."""

from __future__ import annotations

import click

from flightlog.cli._common import db_option, echo_json, errors_as_messages, json_option
from flightlog.cli._safe import echo


@click.command("why")
@click.argument("run_id")
@db_option
@json_option
def why(run_id: str, db: str, as_json: bool) -> None:
    """Explain why RUN failed: the failure point (step k of N), the root-cause step, its agent
    and owner, the causal chain, the evidence, a confidence and ranked alternatives.

    RUN is a run id or a unique prefix of one. --json prints Attribution.to_dict().
    """
    from flightlog.cli._common import open_store_for_cli
    from flightlog.forensics import why as attribute

    with errors_as_messages():
        store = open_store_for_cli(db)
        try:
            att = attribute(store, run_id)
        finally:
            store.close()
    if as_json:
        echo_json(att.to_dict())
        return
    echo(att.summary)
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
        echo("alternatives:")
        for alt in att.alternatives:
            s = alt["step"]
            echo(f"  {alt['score']:.2f}  step {s['index']} {s['name']}: {alt['reason']}")


def _who(ref: object) -> str:
    agent = getattr(ref, "agent", None)
    owner = getattr(ref, "owner", None)
    parts = [f"agent {agent}" if agent else "", f"owner {owner}" if owner else ""]
    parts = [p for p in parts if p]
    return f" ({', '.join(parts)})" if parts else ""
