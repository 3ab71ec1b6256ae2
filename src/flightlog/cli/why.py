"""``flightlog why RUN``: attribute a run's failure to its root-cause step."""

from __future__ import annotations

import click

from flightlog.cli._common import db_option, echo_json, errors_as_messages, json_option


@click.command("why")
@click.argument("run_id")
@db_option
@json_option
@click.option(
    "--judge",
    "use_judge",
    is_flag=True,
    help="For an imported conversation, let the LLM judge configured in flightlog.toml "
    "([judge] url, model) rank the rules' candidates; the evidence reports its tokens.",
)
@click.option("--config", "config_path", default=None, help="Configuration file (flightlog.toml).")
def why(run_id: str, db: str, as_json: bool, use_judge: bool, config_path: str | None) -> None:
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
        finally:
            store.close()
    if as_json:
        echo_json(att.to_dict())
        return
    click.echo(att.summary)
    if not att.failed or att.root_cause is None:
        for line in att.evidence:
            click.echo(f"  - {line}")
        return
    fp, rc = att.failure_point, att.root_cause
    click.echo("")
    if fp is not None:
        click.echo(f"failure point: step {fp.index} of {att.of_steps} {fp.name}" + _who(fp))
    click.echo(f"root cause:    step {rc.index} {rc.name}" + _who(rc))
    label = "hypothesis" if att.hypothesis else "attribution"
    click.echo(f"confidence:    {att.confidence:.2f} ({label}; method: {att.method})")
    if att.chain:
        click.echo("chain:         " + " -> ".join(f"{s.index} {s.name}" for s in att.chain))
    click.echo("evidence:")
    for line in att.evidence:
        click.echo(f"  - {line}")
    if att.alternatives:
        click.echo("alternatives:")
        for alt in att.alternatives:
            s = alt["step"]
            click.echo(f"  {alt['score']:.2f}  step {s['index']} {s['name']}: {alt['reason']}")


def _who(ref: object) -> str:
    agent = getattr(ref, "agent", None)
    owner = getattr(ref, "owner", None)
    parts = [f"agent {agent}" if agent else "", f"owner {owner}" if owner else ""]
    parts = [p for p in parts if p]
    return f" ({', '.join(parts)})" if parts else ""
