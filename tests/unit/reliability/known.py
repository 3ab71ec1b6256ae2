"""A store built with known outcomes, for checking reliability figures by hand.

Workflow ``w``, steps ``a`` -> ``b`` -> ``c`` (each costing 0.01), over two UTC days:

=====  ==============================================  ===========  ==================
runs   what happened                                   status       failed steps
=====  ==============================================  ===========  ==================
4      day 1: every step ok                            succeeded    -
2      day 2: every step ok                            succeeded    -
2      day 2: ``b`` raises; ``c`` is never reached     failed       b (root cause b)
2      day 2: ``a`` returns nothing, ``c`` raises      failed       a (root), c
1      day 2: ``b`` errs, the error is swallowed       degraded     b (no attribution)
1      day 2: outcome never recorded                   unknown      (left out)
1      day 2: still running                            running      (left out)
=====  ==============================================  ===========  ==================
"""

from __future__ import annotations

import itertools
from typing import Any

from flightlog.forensics.attribution import Attribution
from flightlog.forensics.ledger import record_attribution
from flightlog.model import Batch, ErrorInfo, Run, Step

DAY1 = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z
DAY2 = DAY1 + 86_400 * 10**9
H = 3_600 * 10**9
OWNERS = {"a": "team-a", "b": "team-b", "c": "team-c"}
_ids = itertools.count(1)


def _run(store: Any, started: int, status: str, plan: dict[str, str], root: str | None) -> str:
    """``plan``: step name -> "ok" | "error"; steps absent from it were not reached."""
    n = next(_ids)
    rid = f"{n:032x}"
    steps = []
    for i, name in enumerate(("a", "b", "c")):
        if name not in plan:
            continue
        err = ErrorInfo("ValueError", "boom") if plan[name] == "error" else None
        steps.append(
            Step(
                run_id=rid,
                id=f"{n:08x}{i:08x}",
                name=name,
                kind="tool",
                index=i + 1,
                started_ns=started + i,
                ended_ns=started + i + 1,
                agent=f"agent-{name}",
                owner=OWNERS[name],
                status=plan[name],
                error=err,
                cost=0.01,
            )
        )
    ended = None if status == "running" else started + 10
    store.write(Batch(runs=[Run(rid, "w", started, status, ended)], steps=steps))
    if root is not None:
        ref = next(s for s in steps if s.name == root)
        att = {
            "run_id": rid,
            "failed": True,
            "root_cause": {
                "id": ref.id,
                "index": ref.index,
                "name": root,
                "agent": ref.agent,
                "kind": "tool",
                "owner": ref.owner,
            },
            "confidence": 0.9,
            "workflow": "w",
            "status": status,
        }
        record_attribution(store, Attribution.from_dict(att))
    return rid


def build(store: Any) -> None:
    ok = {"a": "ok", "b": "ok", "c": "ok"}
    for i in range(4):
        _run(store, DAY1 + i * H, "succeeded", ok, None)
    for i in range(2):
        _run(store, DAY2 + i * H, "succeeded", ok, None)
    for i in range(2):
        _run(store, DAY2 + 2 * H + i, "failed", {"a": "ok", "b": "error"}, "b")
    for i in range(2):
        _run(store, DAY2 + 3 * H + i, "failed", {"a": "ok", "b": "ok", "c": "error"}, "a")
    _run(store, DAY2 + 4 * H, "degraded", {"a": "ok", "b": "error", "c": "ok"}, None)
    _run(store, DAY2 + 5 * H, "unknown", ok, None)
    _run(store, DAY2 + 6 * H, "running", {"a": "ok"}, None)
