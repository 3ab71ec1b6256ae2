"""The configuration's cost per ended run: what the run-end stages ask of ``flightlog.toml``
(the detectors and budgets of ``[detect]``, the owners of the run's steps, the response
engine's validated settings), with this tree's code and, side by side, with an earlier
commit's (``--before REV``, checked out into a temporary git worktree), each in a process of
its own on the same file: the complete example of docs/alerting.md plus ``[detect]``.

Before the one loader, each of these calls re-read (from an mtime cache), deep-copied and
re-validated the file; now the file is parsed and each section checked once per change, and
a call costs a ``stat`` and dictionary look-ups. Reported per ended run: process CPU time
(``time.process_time``) and wall time, and the ratio.

Run: ``python bench/config_load.py [--runs 2000] [--before e07cf14]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# One ended run's configuration calls, through names both versions have.
PROBE = r"""
import json, os, sys, time
from types import SimpleNamespace as NS
from flightlog.detect.registry import budgets_for, configured_detectors
from flightlog.respond.config import load_respond_config
from flightlog.respond.owners import step_owners

steps = [NS(id=f"s{i}", name=n, agent="a", kind=k, owner=None)
         for i, (n, k) in enumerate([("search_policy", "tool"), ("assess", "llm"),
                                     ("validate_claim", "guardrail")])]
run = NS(workflow="claims-triage", attributes={})

def ended_run():
    configured_detectors()
    budgets_for(run)
    step_owners("claims-triage", steps)
    load_respond_config()

ended_run()  # the first run parses the file
n = int(sys.argv[1])
cpu, wall = time.process_time(), time.perf_counter()
for _ in range(n):
    ended_run()
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
print(json.dumps({"cpu_us": cpu / n * 1e6, "wall_us": wall / n * 1e6}))
"""

ENV = {
    "FLIGHTLOG_OPS_SLACK_URL": "https://hooks.slack.com/services/T/B/1",
    "FLIGHTLOG_CLAIMS_SLACK_URL": "https://hooks.slack.com/services/T/B/2",
    "FLIGHTLOG_SEARCH_SLACK_URL": "https://hooks.slack.com/services/T/B/3",
    "FLIGHTLOG_SMTP_PASSWORD": "pw",
    "FLIGHTLOG_PD_SEARCH": "k1",
    "FLIGHTLOG_PD_SEARCH_LEAD": "k2",
}


def config_text() -> str:
    doc = (REPO / "docs" / "alerting.md").read_text()
    block = re.search(r"## A complete `flightlog.toml`\n\n```toml\n(.*?)```", doc, re.S)
    assert block, "docs/alerting.md has no complete example"
    return block.group(1) + '\n[detect]\ndisable = ["latency"]\n[detect.budgets]\ntokens = 50000\n'


def measure(src: Path, config: Path, runs: int) -> dict[str, float]:
    env = {**os.environ, **ENV, "FLIGHTLOG_CONFIG": str(config), "PYTHONPATH": str(src)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(runs)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=config.parent,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--before", default="e07cf14", help="the earlier commit to compare with")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="flightlog-config-bench-") as tmp:
        config = Path(tmp) / "flightlog.toml"
        config.write_text(config_text())
        old = Path(tmp) / "before"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(old), args.before],
            check=True,
            capture_output=True,
        )
        try:
            before = measure(old / "src", config, args.runs)
        finally:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)],
                check=False,
                capture_output=True,
            )
        now = measure(REPO / "src", config, args.runs)
    print(f"configuration calls of one ended run, {args.runs} runs, load {os.getloadavg()[0]:.1f}")
    print(f"{'':28}{'CPU µs/run':>12}{'wall µs/run':>13}")
    print(f"{'before (' + args.before + ')':28}{before['cpu_us']:>12.1f}{before['wall_us']:>13.1f}")
    print(f"{'now (one loader)':28}{now['cpu_us']:>12.1f}{now['wall_us']:>13.1f}")
    print(f"ratio before/now (CPU): {before['cpu_us'] / now['cpu_us']:.0f}x")


if __name__ == "__main__":
    main()
