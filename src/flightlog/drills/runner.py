"""Running a drill: the workflow with faults armed, then the whole chain checked.

For each run with an injected fault the drill asks, of the records and of the receiver:

1. **detected**: the run did not end clean (failed or degraded), or a detector raised a
   finding of warning severity or above on it;
2. **failure point**: the stored attribution's failure point is ``expect_failure_point``, or
   (by default) the injected step or a step after it;
3. **attribution**: the stored attribution's root cause is the injected step
   (``expect_root``);
4. **paged**: the expected owner's channel received a page for the run's incident within
   ``within`` of the incident's first run ending.

Runs start with ``history`` fault-free runs (the baseline detection compares against).
Runs without any injection (probability < 1) are controls: one that fails is reported.
The drill's runs go to their own store (a temporary one by default) so that production
figures never count them; the chain that runs is the real one: the SDK's writer, the
run-end pipeline (detection, attribution), the response engine, its routing and outbox.

Without ``live``, every team's channel is replaced by a webhook to a local receiver the
drill starts (``/<team>``); the teams and ``[[owners]]`` rules come from the configuration
(``config``). With ``live`` the configuration is used as it is and the outbox's delivery
records say who was told.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flightlog.drills.faults import Fault
from flightlog.drills.inject import Injection, injected
from flightlog.drills.receiver import WebhookReceiver
from flightlog.drills.report import DrillReport, FaultCheck, text
from flightlog.drills.spec import DrillSpec
from flightlog.errors import ConfigurationError
from flightlog.store import core

if TYPE_CHECKING:
    from flightlog.store.base import Store

UNOWNED = "unowned"


def load_entry(entry: str, paths: list[Path]) -> Callable[..., Any]:
    module_name, _, attr = entry.partition(":")
    for p in reversed(paths):
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {module_name!r} (entry {entry!r}): {exc}") from exc
    fn: Any = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise ConfigurationError(f"{module_name!r} has no {attr!r} (entry {entry!r})")
    if not callable(fn):
        raise ConfigurationError(f"entry {entry!r} is not callable")
    return fn  # type: ignore[no-any-return]


def _call(fn: Callable[..., Any], value: Any) -> None:
    with contextlib.suppress(Exception):  # a failing run is what a drill expects
        if value is None:
            result = fn()
        elif isinstance(value, dict) and "args" in value and set(value) <= {"args", "kwargs"}:
            result = fn(*value.get("args", []), **value.get("kwargs", {}))
        else:
            result = fn(value)
        if hasattr(result, "__await__"):
            import asyncio

            asyncio.run(result)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml(v)}" for k, v in value.items()) + " }"
        )
    raise ConfigurationError(f"cannot copy setting {value!r} into the drill's configuration")


def local_config(user: dict[str, Any], teams: set[str], receiver_url: str) -> str:
    """The drill's flightlog.toml: the user's teams and ``[[owners]]`` rules, every team's
    channels replaced by one webhook to the receiver, no grouping delay."""
    rules = [r for r in (user.get("owners") or []) if isinstance(r, dict)]
    if not any(set(r) == {"team"} for r in rules):
        rules.insert(0, {"team": UNOWNED})
    names = set(teams) | set((user.get("teams") or {}).keys()) | {str(r["team"]) for r in rules}
    # Every injected fault should page: no auto-resolution and no causal inhibition mid-drill.
    out = ["[respond]", "auto_resolve_after = 1000000", "causal_inhibition = false", ""]
    for t in sorted(names):
        chan = f"drill-{t}"
        out += [
            f"[teams.{json.dumps(t)}]",
            f"channels = [{json.dumps(chan)}]",
            f"pager = [{json.dumps(chan)}]",
            "",
        ]
        out += [
            f"[channels.{json.dumps(chan)}]",
            'type = "webhook"',
            f"url = {json.dumps(receiver_url + '/' + t)}",
            'timeout = "5s"',
            "",
        ]
    for r in rules:
        out.append("[[owners]]")
        out += [f"{k} = {_toml(v)}" for k, v in r.items()]
        out.append("")
    out += [
        "[route]",
        'receiver = "owner"',
        'group_by = ["incident"]',
        'group_wait = "0s"',
        'group_interval = "1s"',
        'repeat_interval = "4h"',
        "",
    ]
    return "\n".join(out)


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def _expected_owner(store: Store, config: Any, run: Any, fault: Fault) -> str | None:
    if fault.expect_owner:
        return fault.expect_owner
    from flightlog.respond.owners import owner_query, resolve_owner

    step = next((s for s in store.get_steps(run.id) if s.name == fault.root), None)
    if step is not None and step.owner:
        return str(step.owner)
    try:
        return resolve_owner(
            config,
            owner_query(
                run.workflow,
                step=fault.root,
                agent=step.agent if step else None,
                kind=step.kind if step else None,
            ),
        ).team
    except ConfigurationError:
        return None


def run_drill(
    spec: DrillSpec,
    *,
    live: bool = False,
    config_path: str | Path | None = None,
    workdir: str | Path | None = None,
    poll_s: float = 0.1,
) -> DrillReport:
    """Run the drill (see the module docstring) and check every expectation."""
    import flightlog
    from flightlog.app import open_store
    from flightlog.config import find_config_file, load_config
    from flightlog.respond.config import load_respond_config
    from flightlog.respond.engine import Engine

    cfg_file = Path(config_path) if config_path else spec.config
    if cfg_file is None and live:
        cfg_file = find_config_file()
    if live and cfg_file is None:
        raise ConfigurationError("--live needs a configuration with channels (--config)")
    user = load_config(cfg_file).data if cfg_file else {}
    fn = load_entry(spec.entry, spec.path)
    tmp_ctx = tempfile.TemporaryDirectory(prefix="flightlog-drill-") if workdir is None else None
    work = Path(tmp_ctx.name if tmp_ctx else str(workdir))
    work.mkdir(parents=True, exist_ok=True)
    url = spec.store or f"sqlite:///{work / 'drill.db'}"
    report = DrillReport(spec.name, spec.to_dict(), time.time_ns(), live=live, store=url)
    quiet = work / "quiet.toml"
    quiet.write_text("# no channels: nothing is sent while the baseline is recorded\n")
    receiver = None if live else WebhookReceiver().start()
    rng = random.Random(spec.seed)
    runs: list[tuple[str, list[Injection]]] = []
    try:
        flightlog.configure(url, service=f"drill:{spec.name}")
        with _env("FLIGHTLOG_CONFIG", str(quiet)):
            for i in range(spec.history):
                _call(fn, spec.inputs[i % len(spec.inputs)])
            flightlog.flush()
        store = open_store(url)
        try:
            if live:
                drill_cfg = Path(str(cfg_file))
            else:
                teams = {f.expect_owner for f in spec.faults if f.expect_owner}
                with store.read() as tx:
                    teams |= core.owners(tx)
                drill_cfg = work / "flightlog.toml"
                assert receiver is not None
                drill_cfg.write_text(local_config(user, teams, receiver.url))
            respond = load_respond_config(drill_cfg)
            with _env("FLIGHTLOG_CONFIG", str(drill_cfg)):
                engine = Engine(store, respond)
                for i in range(spec.runs):
                    before = store.list_runs(_recent())
                    seen = {r.id for r in before}
                    with injected(spec.faults, rng=rng) as log:
                        _call(fn, spec.inputs[(spec.history + i) % len(spec.inputs)])
                    flightlog.flush()
                    new = [r for r in store.list_runs(_recent()) if r.id not in seen]
                    for r in new:
                        runs.append((r.id, list(log)))
                    if not new:
                        report.errors.append(f"run {i + 1} of the drill recorded no run")
                    engine.process_runs(engine.pending_runs())
                    engine.tick()
                _await_pages(spec, store, engine, receiver, runs, live, poll_s)
                _check(report, spec, store, respond, receiver, runs, live)
                _unreached_faults(report, spec, store, runs)
        finally:
            store.close()
    finally:
        flightlog.shutdown()
        if receiver is not None:
            receiver.stop()
        if tmp_ctx is not None:
            tmp_ctx.cleanup()
    report.ended_ns = time.time_ns()
    return report


def _unreached_faults(
    report: DrillReport, spec: DrillSpec, store: Store, runs: list[tuple[str, list[Injection]]]
) -> None:
    """A fault at a step no run of the drill reached (a misspelt name, a step never called)
    tests nothing: its runs pass as controls. That fails the drill, naming the steps seen."""
    seen: set[str] = set()
    for rid, _ in runs:
        seen.update(s.name for s in store.get_steps(rid))
    for n, fault in enumerate(spec.faults, 1):
        if fault.step not in seen:
            names = ", ".join(sorted(seen)) or "none"
            report.errors.append(
                f"fault {n} ({fault.kind} at {fault.step!r}) was never injected: no run of the "
                f"drill reached a step named {fault.step!r} (steps recorded: {names}); a "
                "misspelt name, or a step the other faults always stop the run before"
            )


def _recent() -> Any:
    from flightlog.store.base import RunQuery

    return RunQuery(limit=20)


def _incident_of(store: Store, run_id: str) -> int | None:
    with store.read() as tx:
        row = tx.fetchone("SELECT incident_id FROM respond_processed WHERE run_id = ?", (run_id,))
    return int(row[0]) if row and row[0] is not None else None


def _pages(
    store: Store, receiver: WebhookReceiver | None, live: bool
) -> dict[tuple[int, str], int]:
    """(incident, team) -> when its first page arrived (local) or was delivered (live)."""
    out: dict[tuple[int, str], int] = {}
    if receiver is not None:
        for item in receiver.snapshot():
            for a in item.alerts():
                labels = a.get("labels") or {}
                if labels.get("role") != "root_cause":
                    continue
                with contextlib.suppress(ValueError, TypeError):
                    key = (int(str(labels.get("incident"))), item.team)
                    out.setdefault(key, item.at_ns)
        return out
    if live:
        with store.read() as tx:
            rows = tx.fetchall(
                "SELECT o.incident_ids, o.delivered_ns, o.channel FROM respond_outbox o "
                "WHERE o.status = 'delivered' AND o.kind IN ('notify', 'escalation')"
            )
            alerts = tx.fetchall(
                "SELECT incident_id, team FROM respond_alerts WHERE role = ?", ("root_cause",)
            )
        teams = {int(i): str(t) for i, t in alerts}
        for ids, delivered, _channel in rows:
            for iid in json.loads(ids or "[]"):
                team = teams.get(int(iid))
                if team is not None and delivered is not None:
                    key = (int(iid), team)
                    out[key] = min(out.get(key, int(delivered)), int(delivered))
    return out


def _await_pages(
    spec: DrillSpec,
    store: Store,
    engine: Any,
    receiver: WebhookReceiver | None,
    runs: list[tuple[str, list[Injection]]],
    live: bool,
    poll_s: float,
) -> None:
    """Keep the engine ticking (as ``flightlog watch`` does) until every incident of a run
    with an injected fault has paged someone, or ``within`` has passed since the last run."""
    deadline = time.time_ns() + spec.within_ns
    while True:
        engine.process_runs(engine.pending_runs())
        engine.tick()
        wanted = {_incident_of(store, rid) for rid, log in runs if log}
        wanted.discard(None)
        paged = {i for i, _ in _pages(store, receiver, live)}
        if wanted <= paged or time.time_ns() >= deadline:
            return
        time.sleep(poll_s)


def _check(
    report: DrillReport,
    spec: DrillSpec,
    store: Store,
    respond: Any,
    receiver: WebhookReceiver | None,
    runs: list[tuple[str, list[Injection]]],
    live: bool,
) -> None:
    from flightlog.forensics.ledger import stored_attribution

    pages = _pages(store, receiver, live)
    by_step = {f.step: f for f in spec.faults}
    first_end: dict[int, int] = {}
    for rid, _ in runs:
        run = store.get_run(rid)
        iid = _incident_of(store, rid)
        if run is not None and iid is not None and run.ended_ns:
            first_end[iid] = min(first_end.get(iid, run.ended_ns), run.ended_ns)
    for rid, log in runs:
        run = store.get_run(rid)
        if not log:
            report.controls += 1
            if run is None or run.status != "succeeded":
                report.control_failures.append(rid)
            continue
        effective = [i for i in log if i.effective]
        if not effective:
            report.no_effect.append(rid)
            continue
        roots = {by_step[i.step].root: by_step[i.step] for i in effective}
        fault = by_step[effective[0].step]
        check = FaultCheck(
            run_id=rid,
            injected=[
                {
                    "step": i.step,
                    "kind": i.kind,
                    "occurrence": i.occurrence,
                    "effective": i.effective,
                }
                for i in log
            ],
            expect_root=fault.root,
            expect_owner=None,
        )
        report.checks.append(check)
        if run is None:
            check.misses.append("no run was recorded")
            continue
        check.status = run.status
        steps = store.get_steps(rid)
        findings = store.get_findings(rid)
        # A finding of warning severity or above is Flightlog noticing, even on a run that
        # answered; whether anyone was told is checked separately.
        severe = [f for f in findings if f.severity in ("warning", "error", "critical")]
        check.detected = run.status in ("failed", "degraded") or bool(severe)
        att = stored_attribution(store, rid)
        with store.read() as tx:
            row = tx.fetchone(
                "SELECT created_ns FROM forensics_attributions WHERE run_id = ?", (rid,)
            )
        # Time to detect: from the run's end to the stored attribution (Flightlog knows
        # where and why), else to the first severe finding a detector added after the end.
        end = run.ended_ns or 0
        later = [f.created_ns for f in severe if f.created_ns and f.created_ns >= end]
        detected_at = int(row[0]) if row else min(later, default=None)
        if detected_at is not None and run.ended_ns:
            check.mttd_ns = max(0, detected_at - run.ended_ns)
        if not check.detected:
            check.misses.append(f"not detected: the run {run.status} and no detector objected")
            continue
        by_id = {s.id: s for s in steps}
        if att is not None:
            fp_ref, rc_ref = att.failure_point, att.root_cause
            fp_name = fp_ref.name if fp_ref else None
            fp_index = fp_ref.index if fp_ref else None
            check.root = rc_ref.name if rc_ref else None
        elif run.status != "failed" and severe:
            # Not failed, so not attributed: the finding's step is where it was seen.
            flagged = sorted(
                (by_id[f.step_id] for f in severe if f.step_id in by_id), key=lambda s: s.index
            )
            fp_name = check.root = flagged[0].name if flagged else None
            fp_index = flagged[0].index if flagged else None
        else:
            check.misses.append("no attribution was stored for the run")
            continue
        if check.root in roots:
            fault = roots[check.root]
            check.expect_root = check.root
        check.failure_point = fp_name
        injected_index = min((s.index for s in steps if s.name == fault.step), default=None)
        if fault.expect_failure_point:
            check.failure_point_ok = fp_name == fault.expect_failure_point
        else:
            check.failure_point_ok = (
                fp_index is not None and injected_index is not None and fp_index >= injected_index
            )
        if not check.failure_point_ok:
            want = fault.expect_failure_point or f"{fault.step} or a later step"
            check.misses.append(f"failure point {fp_name!r}, expected {want}")
        check.root_ok = check.root in roots
        if not check.root_ok:
            check.misses.append(
                f"root cause {check.root!r}, expected {' or '.join(repr(r) for r in roots)}"
            )
        check.expect_owner = _expected_owner(store, respond, run, fault)
        if run.status != "failed":
            check.misses.append(
                f"the run {run.status}: a detector flagged it, but only failed runs page "
                "anyone, so nobody was told"
            )
            continue
        check.incident = _incident_of(store, rid)
        if check.incident is None:
            check.misses.append("no incident was opened")
            continue
        at = pages.get((check.incident, check.expect_owner or ""))
        start = first_end.get(check.incident)
        if at is not None and start is not None:
            check.alert_latency_ns = max(0, at - start)
        check.paged = at is not None and (
            check.alert_latency_ns is None or check.alert_latency_ns <= spec.within_ns
        )
        if not check.paged:
            others = sorted({t for (i, t) in pages if i == check.incident})
            check.misses.append(
                f"owner {check.expect_owner!r} was not paged within {spec.within_ns / 1e9:g}s"
                + (f" (paged instead: {', '.join(others)})" if others else "")
            )


__all__ = ["DrillReport", "FaultCheck", "load_entry", "local_config", "run_drill", "text"]
