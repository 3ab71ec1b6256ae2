"""The ``flightlog`` command line: a thin layer over library functions.

Commands live in their own modules and are imported only when invoked, so ``flightlog
--help`` stays fast and a command's heavy dependencies load only for that command.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

# name -> "module:attribute" of a click command or group. Keep sorted by name.
COMMANDS: dict[str, tuple[str, str]] = {
    "alerts": ("flightlog.cli.respond:alerts", "The notification outbox and delivery history."),
    "audit": (
        "flightlog.cli.audit:audit",
        "The tamper-evident audit ledger: verify, prove, export.",
    ),
    "demo": ("flightlog.cli.demo:demo", "Record the claims-triage demo workflow (offline)."),
    "detect": ("flightlog.cli.detect:detect", "Run the detectors on a run and list its findings."),
    "drill": (
        "flightlog.cli.drill:drill",
        "Run a fire drill: inject faults, check detection, attribution, paging.",
    ),
    "import": ("flightlog.cli.importcmd:import_", "Import chat transcripts (Who&When) as runs."),
    "incident": ("flightlog.cli.respond:incident", "Show, acknowledge or resolve an incident."),
    "incidents": ("flightlog.cli.respond:incidents", "List incidents, newest first."),
    "keys": ("flightlog.cli.keys:keys", "API keys for the server: create, list, revoke."),
    "owners": ("flightlog.cli.respond:owners", "Who owns a workflow or a step (explain)."),
    "reliability": (
        "flightlog.cli.reliability:reliability",
        "Per-step and end-to-end reliability with intervals.",
    ),
    "replay": (
        "flightlog.cli.replay:replay",
        "Re-run a recorded run, correcting steps: does the failure disappear?",
    ),
    "report": (
        "flightlog.cli.report:report",
        "A postmortem of a run, or the board report over a period (--period).",
    ),
    "runs": ("flightlog.cli.runs:runs", "List recorded runs."),
    "serve": ("flightlog.cli.serve:serve", "Receive OTLP traces; serve the REST API and web view."),
    "show": ("flightlog.cli.runs:show", "Show a run: its step tree, lineage and findings."),
    "watch": ("flightlog.cli.respond:watch", "Watch a store: incidents, alerts, delivery."),
    "why": ("flightlog.cli.why:why", "Attribute a failed run to its root-cause step."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target[0].split(":")
        module = importlib.import_module(module_name)
        command: click.Command = getattr(module, attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="flightlog")
def cli() -> None:
    """Flightlog: the flight recorder and crash investigator for AI agents.

    Every command that reads or writes records takes --db URL (default: $FLIGHTLOG_URL,
    else sqlite:///flightlog.db in the current directory).
    """


def main(argv: list[str] | None = None) -> Any:
    return cli.main(args=argv, prog_name="flightlog")
