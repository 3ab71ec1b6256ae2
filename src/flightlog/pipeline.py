"""What happens after records are stored: the run-end pipeline and the periodic work.

When runs end (in embedded mode after the background writer has stored them; in server mode
after ingestion, or when a trace is closed idle) ``runs_ended(store, run_ids)`` moves each
ended run through the stages, in order, each computed once and handed on::

    detect     run the detectors once; store their new findings
    attribute  a failed (or degraded) run's attribution, computed once from those findings,
               stored and appended to the audit ledger (``forensics.ledger``)
    respond    incidents and alerts from the *stored* attribution (``respond.engine``; a
               no-op without a flightlog.toml with channels)

then the run-end work other capabilities registered. A stage or hook that raises is logged
and counted, never propagated: the pipeline must not stop recording.

Registering work (one typed input each, so fields can be added later)::

    @flightlog.pipeline.on_run_end
    def evaluate_slos(ended: RunsEnded) -> None:   # after the stages, per batch of runs
        for e in ended.runs: ...                   # e.run, e.findings, e.attribution

    @flightlog.pipeline.every(30)
    def burn_rates(tick: Tick) -> None:            # every 30 s while a clock runs
        ...                                        # tick.store, tick.now_ns

Periodic work runs where a clock runs: ``flightlog serve`` and ``flightlog watch`` (each
pass; see ``Clock``); the response engine's grouping, paging, escalation and auto-resolution are
periodic work too, so a quiet server still pages. ``register(hook)`` keeps the older form,
``hook(store, run_ids)``, called after the stages.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flightlog.errors import NotFoundError

if TYPE_CHECKING:
    from flightlog.detect.context import RunContext
    from flightlog.forensics.attribution import Attribution
    from flightlog.model import Finding, Run, RunRecord
    from flightlog.store.base import Store

log = logging.getLogger("flightlog.pipeline")


# -- what the stages hand on -------------------------------------------------------------------
@dataclass
class EndedRun:
    """One ended run as it moves through the stages."""

    run: Run
    record: RunRecord | None = None  # the run's record as read once at the start
    context: RunContext | None = None  # the record, its payloads and history (detect)
    findings: list[Finding] = field(default_factory=list)  # every finding after detect
    attribution: Attribution | None = None  # the stored, audited attribution (failed runs)
    # The record's payloads, read with it (None: detect reads them when first needed).
    payloads: dict[str, bytes] | None = field(default=None, repr=False)
    # The detectors and their configuration, loaded once for the batch of runs.
    detectors: DetectorSetup | None = field(default=None, repr=False)


class DetectorSetup:
    """The ``[detect]`` configuration and the configured detectors, loaded once per batch of
    ended runs (the file is re-read when it changes, by the next batch); a configuration
    error is raised again for every run, as when each run loaded it."""

    def __init__(self) -> None:
        self._loaded: tuple[dict[str, Any], dict[str, Callable[..., Any]]] | None = None
        self._error: Exception | None = None

    def get(self) -> tuple[dict[str, Any], dict[str, Callable[..., Any]]]:
        if self._loaded is None and self._error is None:
            from flightlog.detect.registry import configured_detectors, load_config

            try:
                config = load_config()
                self._loaded = (config, configured_detectors(config))
            except Exception as exc:
                self._error = exc
        if self._error is not None:
            raise self._error
        assert self._loaded is not None
        return self._loaded


@dataclass
class RunsEnded:
    """The input of run-end work: the store and the runs that just ended, staged."""

    store: Store
    runs: list[EndedRun]

    @property
    def run_ids(self) -> list[str]:
        return [e.run.id for e in self.runs]


@dataclass(frozen=True)
class Tick:
    """The input of periodic work."""

    store: Store
    now_ns: int


Stage = Callable[[Any, EndedRun], None]
RunEndWork = Callable[[RunsEnded], None]
PeriodicWork = Callable[[Tick], None]
RunEndHook = Callable[[Any, Sequence[str]], None]


# -- the stages ----------------------------------------------------------------------------
# Ended runs that are attributed: failed, and degraded (errors swallowed, the run answered).
FAULT_STATUSES = ("failed", "degraded")


def detect(store: Store, ended: EndedRun) -> None:
    """Run every configured detector once; store the new findings."""
    # Imported here (``import flightlog`` stays light), as modules: a ``from`` import in a
    # function costs more per call, and this runs once per ended run.
    import flightlog.detect as detection
    import flightlog.detect.context as context
    import flightlog.forensics.spectrum as spectrum
    import flightlog.model as model

    if ended.record is None:
        ctx = detection.RunContext.load(store, ended.run.id, ending=True)
    else:  # read once by runs_ended
        record = ended.record
        if record.run is not ended.run:  # a stage before changed the run
            record = dataclasses.replace(record, run=ended.run)
        history = context.history_cache.get(store, ended.run.workflow, ending=ended.run)
        ctx = detection.RunContext(store, record, history, payloads=ended.payloads)
    if ended.detectors is None:
        found = detection.run_detectors(ctx)
    else:
        ctx.detect_config, detectors = ended.detectors.get()
        found = detection.run_detectors(ctx, detectors)
    known = {f.id for f in ctx.record.findings}
    new = [f for f in found if f.id not in known]
    if new:
        store.write(model.Batch(findings=new))
    ended.context = ctx
    ended.findings = ctx.record.findings + new
    # Baselines change once per ended run, here, from what was just loaded: the workflow's
    # history and spectrum are not re-read because of it (run-end cost does not grow with
    # the runs stored).
    context.history_cache.observe(ctx)
    spectrum.observe(ctx)


def attribute(store: Store, ended: EndedRun) -> None:
    """A failed run's attribution, from the findings of ``detect``: stored and audited once
    (a run delivered again keeps the attribution it was given first)."""
    if ended.run.status not in FAULT_STATUSES:
        return
    from flightlog.forensics.attribution import attribute as attribute_run
    from flightlog.forensics.ledger import record_attribution, stored_attribution

    stored = stored_attribution(store, ended.run.id)
    if stored is None:
        assert ended.context is not None, "attribute needs the detect stage before it"
        record_attribution(store, attribute_run(ended.context, findings=ended.findings))
        stored = stored_attribution(store, ended.run.id)  # what the ledger holds, read back
    ended.attribution = stored


def respond(ended: RunsEnded) -> None:
    """Incidents and alerts for the ended runs, from their stored attributions; the SLOs'
    burn rates (throttled) before the engine ticks."""
    from flightlog.reliability.burn_alerts import evaluate
    from flightlog.respond.engine import on_runs_ended

    on_runs_ended(ended.store, ended.run_ids, before_tick=(evaluate,))


def respond_tick(tick: Tick) -> None:
    """SLO burn rates (throttled), then group, page, escalate, resolve and deliver on the
    clock, not only when a run ends."""
    from flightlog.reliability.burn_alerts import evaluate
    from flightlog.respond.engine import on_clock

    on_clock(tick.store, before_tick=(evaluate,))


STAGES: tuple[tuple[str, Stage], ...] = (
    ("detect", detect),
    ("attribute", attribute),
)

# -- registered work ---------------------------------------------------------------------------
_lock = threading.Lock()
_run_end: list[RunEndWork] = [respond]
_hooks: list[RunEndHook] = []
_periodic: list[tuple[float, PeriodicWork]] = [(1.0, respond_tick)]
hook_errors = 0


def on_run_end(work: RunEndWork) -> RunEndWork:
    """Register ``work(RunsEnded)`` to run after the stages for every batch of ended runs
    (usable as a decorator; registering the same callable twice is a no-op)."""
    with _lock:
        if work not in _run_end:
            _run_end.append(work)
    return work


def every(seconds: float, work: PeriodicWork | None = None) -> Any:
    """Register ``work(Tick)`` to run every ``seconds`` while a clock runs (``flightlog
    serve``, ``flightlog watch``): ``@every(30)`` or ``every(30, fn)``."""
    if seconds <= 0:
        raise ValueError(f"every() needs a positive interval in seconds, got {seconds!r}")

    def add(fn: PeriodicWork) -> PeriodicWork:
        with _lock:
            if all(f is not fn for _, f in _periodic):
                _periodic.append((float(seconds), fn))
        return fn

    return add(work) if work is not None else add


def register(hook: RunEndHook) -> RunEndHook:
    """Add a ``hook(store, run_ids)`` run after the stages (the older form of
    ``on_run_end``). Registering the same callable twice is a no-op."""
    with _lock:
        if hook not in _hooks:
            _hooks.append(hook)
    return hook


def unregister(work: Any) -> None:
    """Remove run-end work, a hook or periodic work registered before."""
    with _lock:
        for registry in (_run_end, _hooks):
            if work in registry:
                registry.remove(work)
        _periodic[:] = [(s, f) for s, f in _periodic if f is not work]


# -- running ---------------------------------------------------------------------------------
def _failed(what: str, n: int) -> None:
    global hook_errors
    hook_errors += 1
    log.exception("run-end %s failed for %d run(s)", what, n)


# Runs whose records (and payloads) are read together, in one read transaction.
READ_BATCH = 200


def _read_records(
    store: Store, run_ids: Sequence[str]
) -> tuple[dict[str, RunRecord], dict[str, bytes]]:
    """The stored records of ``run_ids`` and their steps' payloads, in one snapshot."""
    from flightlog.store import core

    payloads: dict[str, bytes] = {}
    with store.read() as tx:
        records = core.records(tx, run_ids, payloads=payloads)  # payloads read with the steps
    return records, payloads


def runs_ended(store: Store, run_ids: Sequence[str]) -> RunsEnded:
    """Move runs that just ended through the stages, then the registered work. Never raises;
    returns what the stages computed. Records are read ``READ_BATCH`` runs at a time (one
    read transaction each), and the detectors' configuration once per call."""
    ended = RunsEnded(store, [])
    ids = list(dict.fromkeys(run_ids))
    setup = DetectorSetup()
    for k in range(0, len(ids), READ_BATCH):
        part = ids[k : k + READ_BATCH]
        read: tuple[dict[str, RunRecord], dict[str, bytes]] | None = None
        try:
            read = _read_records(store, part)
        except Exception:  # read run by run below (and fail, if the store does, run by run)
            log.debug("batch read of %d run(s) failed; reading one at a time", len(part))
        for run_id in part:
            try:
                payloads = None
                if read is None:
                    try:
                        record = store.get_record(run_id)  # read once for every stage
                    except NotFoundError:
                        continue
                else:
                    hit = read[0].get(run_id)
                    if hit is None:
                        continue
                    record, payloads = hit, read[1]
                if record.run.status == "running":
                    continue
                item = EndedRun(record.run, record=record, payloads=payloads, detectors=setup)
                for _name, stage in STAGES:
                    stage(store, item)
                ended.runs.append(item)
            except Exception:  # one bad run must not stop the others
                _failed(f"stages for run {run_id}", 1)
    with _lock:
        work, hooks = list(_run_end), list(_hooks)
    if ended.runs:
        for w in work:
            try:
                w(ended)
            except Exception:
                _failed(f"work {w!r}", len(ended.runs))
    if run_ids:
        for hook in hooks:
            try:
                hook(store, run_ids)
            except Exception:
                _failed(f"hook {hook!r}", len(run_ids))
    return ended


class Clock:
    """Runs the periodic work (and ``extra`` callables) on its own thread, once per
    ``resolution`` seconds at most; each piece of work when its interval has passed."""

    def __init__(
        self,
        store: Store,
        *,
        resolution: float = 0.5,
        extra: Sequence[tuple[float, Callable[[Tick], None]]] = (),
        respond: bool = True,
    ) -> None:
        self.store = store
        self.resolution = resolution
        self.extra = list(extra)
        self.respond = respond  # False where the caller ticks its own engine (watch)
        self.errors = 0
        self._due: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_due(self, now: float | None = None) -> int:
        """Run the work whose interval has passed; returns how many ran."""
        now = time.monotonic() if now is None else now
        with _lock:
            jobs = [(t, f) for t, f in _periodic if self.respond or f is not respond_tick]
        jobs += self.extra
        ran = 0
        for seconds, fn in jobs:
            key = id(fn)
            if self._due.get(key, 0.0) > now:
                continue
            self._due[key] = now + seconds
            ran += 1
            try:
                fn(Tick(self.store, time.time_ns()))
            except Exception:
                self.errors += 1
                log.exception("periodic work %r failed", fn)
        return ran

    def start(self) -> Clock:
        self._thread = threading.Thread(target=self._loop, name="flightlog-clock", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.resolution):
            self.run_due()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
