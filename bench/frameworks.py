"""Real agent frameworks, end to end: per framework, how many fault runs Flightlog marks
failed or degraded (never a clean success), how often it names the right root cause, whether
it names the agents, and whether any span is lost.

    python bench/frameworks.py [--markdown] [FRAMEWORK ...]

Runs the apps of the framework suite (tests/integration/frameworks: the real framework and
instrumentation, a scripted OpenAI-compatible endpoint on loopback, the real OTLP exporter, a
real ``flightlog serve`` per framework), then reads each run back through the library. Each
framework: 3 successful runs, then 5 fault runs (a tool returning [], error JSON, truncated
JSON; a tool that raises; a tool error the framework catches). Needs ``make install-test``
and, for the Vercel AI SDK, ``make install-node``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.integration.frameworks import fake_llm  # noqa: E402
from tests.integration.frameworks.conftest import run_app  # noqa: E402
from tests.integration.frameworks.expectations import FAULTS, FRAMEWORKS, LIVE  # noqa: E402
from tests.integration.frameworks.outcomes import outcomes  # noqa: E402

from flightlog.app import open_store  # noqa: E402
from flightlog.model import FAULT_STATUSES  # noqa: E402

SCENARIOS = ("ok_1", "ok_2", "ok_3", *FAULTS)


def measure(name: str, llm: str, tmp: Path) -> dict[str, object]:
    fw = FRAMEWORKS[name]
    started = time.monotonic()
    app = run_app(name, list(fw.command), llm, tmp)
    seconds = time.monotonic() - started
    store = open_store(app.server.store_url)
    got = outcomes(store)
    faults = [o for s, o in zip(SCENARIOS, got, strict=False) if not s.startswith("ok")]
    stored = sum(len(store.get_steps(o.run_id)) for o in got)
    verify = subprocess.run(
        [sys.executable, "-m", "flightlog", "audit", "verify", "--db", app.server.store_url],
        capture_output=True,
        text=True,
    )
    clean = [o for o in faults if o.status not in FAULT_STATUSES]
    return {
        "framework": fw.label,
        "runs": len(got),
        "faults": len(faults),
        "marked": sum(o.status in FAULT_STATUSES for o in faults),
        "clean": len(clean),
        "root": sum(o.root_cause == fw.tool("lookup_policy") for o in faults),
        "agents": "yes"
        if all(fw.agents <= set(o.agents) for o in got) and fw.agents
        else "none named by the framework"
        if not fw.agents
        else "no",
        "tokens_once": sum(o.input_tokens + o.output_tokens for o in got) == app.llm_tokens,
        "lost": app.spans_exported - stored,
        "verify": verify.returncode == 0,
        "seconds": seconds,
    }


def _agents(expected: frozenset[str], seen: list[set[str]]) -> str:
    if not expected:
        return "none (the framework names none)"
    if all(expected <= s for s in seen):
        return ", ".join(sorted(expected))
    return "missing"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("frameworks", nargs="*", default=LIVE)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    rows = []
    with fake_llm.serve() as llm, tempfile.TemporaryDirectory() as tmp:
        for name in args.frameworks:
            rows.append(measure(name, llm, Path(tmp)))
    faults = sum(int(r["faults"]) for r in rows)  # type: ignore[call-overload]
    marked = sum(int(r["marked"]) for r in rows)  # type: ignore[call-overload]
    root = sum(int(r["root"]) for r in rows)  # type: ignore[call-overload]
    lost = sum(int(r["lost"]) for r in rows)  # type: ignore[call-overload]
    head = (
        "| framework (instrumentation) | fault runs marked failed/degraded | root cause right "
        "| agents named | tokens counted once | spans lost | audit verify | seconds |"
    )
    print(head)
    print("|---|---:|---:|---|---|---:|---|---:|")
    for r in rows:
        print(
            f"| {r['framework']} | {r['marked']}/{r['faults']} | {r['root']}/{r['faults']} "
            f"| {r['agents']} | {'yes' if r['tokens_once'] else 'no'} | {r['lost']} "
            f"| {'ok' if r['verify'] else 'FAILS'} | {float(r['seconds']):.0f} |"  # type: ignore[arg-type]
        )
    print(
        f"| **all** | **{marked}/{faults}** | **{root}/{faults} = {100 * root / faults:.0f}%** "
        f"| | | **{lost}** | | |"
    )


if __name__ == "__main__":
    main()
