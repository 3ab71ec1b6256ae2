"""The response engine: from ended runs to incidents, alerts and delivered notifications.

One engine serves every place Flightlog runs: the run-end pipeline's respond stage and the
clock's periodic tick (``flightlog.pipeline``, in the SDK's background writer and in the
server; ``engine_for``), ``flightlog watch`` (which polls a store for ended runs) and the
``incident ack|resolve`` commands. All state lives in the store, so any of them can pick up
where another stopped. The engine ties together one part per responsibility:

- ``recording``    ended runs -> incidents and their alerts (``process_runs``)
- ``notify``       alerts -> routing tree, groups, silences, inhibition -> the outbox
- ``escalation``   unacknowledged pages up the team's escalation policy
- ``transitions``  acknowledge / resolve, and the channels that follow them (PagerDuty)
- ``outbox``       persistent, retried delivery through the channel plug-ins (``channels``)

``tick`` escalates unacknowledged pages, flushes alert groups that are due into the outbox,
and delivers what is due. Who is told: the owner of the root-cause step is paged
(``role=root_cause``, the team's ``pager`` channels), the workflow's owner is notified
(``role=workflow_owner``, the team's ``channels``); when they are the same team only the page
is sent. Work of layers above (the SLO burn-rate evaluation of ``flightlog.reliability``)
is handed in by the caller (``before_tick``), never imported from here.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from flightlog.respond import alerts as alerts_mod
from flightlog.respond import transitions
from flightlog.respond.channels import AlertView
from flightlog.respond.clock import Clock, SystemClock
from flightlog.respond.config import RespondConfig, load_respond_config
from flightlog.respond.escalation import Escalator
from flightlog.respond.incidents import Incident
from flightlog.respond.notify import Notifier, TickResult
from flightlog.respond.outbox import Outbox, Sender
from flightlog.respond.recording import Attribute, IncidentRecorder
from flightlog.respond.schema import ensure_schema
from flightlog.store.base import Store

__all__ = [
    "Engine",
    "TickResult",
    "engine_for",
    "on_clock",
    "on_runs_ended",
    "open_engine",
    "watch",
]

log = logging.getLogger("flightlog.respond")

# Work run before each tick with the engine (the SLO evaluation, handed in from above).
EngineWork = Callable[["Engine"], None]


class Engine:
    """Incidents, routing and delivery over one store (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        config: RespondConfig,
        *,
        clock: Clock | None = None,
        attribute: Attribute | None = None,
        sender: Sender | None = None,
        **outbox_options: Any,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock or SystemClock()
        ensure_schema(store)
        self.recorder = IncidentRecorder(store, config, self.clock, attribute)
        self.notifier = Notifier(store, config)
        self.escalator = Escalator(store, config, self.notifier)
        self.outbox = Outbox(store, config.channels, self.clock, sender=sender, **outbox_options)
        self._lock = threading.Lock()

    @property
    def attribute(self) -> Attribute:
        return self.recorder.attribute

    # -- runs -> incidents ----------------------------------------------------------------
    def pending_runs(self, since_ns: int | None = None, limit: int = 1000) -> list[str]:
        """Ended runs (failed or succeeded) not yet processed, oldest end first."""
        return self.recorder.pending_runs(since_ns, limit)

    def process_runs(self, run_ids: Sequence[str]) -> list[int]:
        """Fold ended runs into incidents (idempotent per run). Returns touched incident ids."""
        with self._lock:
            return self.recorder.process_runs(run_ids)

    # -- the message ---------------------------------------------------------------------
    def alert_view(self, incident: Incident, role: str, team: str) -> AlertView:
        return alerts_mod.view(self.config, incident, role, team)

    # -- tick ------------------------------------------------------------------------------
    def tick(self) -> TickResult:
        """Escalate, flush due groups into the outbox, deliver what is due."""
        result = TickResult()
        with self._lock:
            self.notifier.flush(result, self.clock.now_ns())
            self.escalator.escalate(result, self.clock.now_ns())
        counts = self.outbox.deliver_due()
        result.delivered, result.retried, result.failed = (
            counts["delivered"],
            counts["retry"],
            counts["failed"],
        )
        return result

    # -- human transitions -------------------------------------------------------------
    def transition(
        self, incident_id: int, to: str, *, actor: str, note: str | None = None
    ) -> Incident:
        """Acknowledge or resolve an incident by hand; tells PagerDuty, then delivers."""
        with self._lock:
            incident = transitions.transition(
                self.store,
                self.config,
                incident_id,
                to,
                actor=actor,
                now=self.clock.now_ns(),
                note=note,
            )
        self.outbox.deliver_due()
        return incident


# -- entry points ------------------------------------------------------------------------------
def open_engine(
    store: Store, config_path: str | os.PathLike[str] | None = None, **kwargs: Any
) -> Engine:
    """An engine over ``store`` with the configuration file found as usual."""
    return Engine(store, load_respond_config(config_path), **kwargs)


# One engine per open store (its id is unique while the store is held here); an entry is
# dropped when its store closes, so the cache holds no more than the stores open.
_engines: dict[int, tuple[Store, RespondConfig, Engine | None]] = {}
_engines_lock = threading.Lock()


def engine_for(store: Store) -> Engine | None:
    """The engine the run-end pipeline and the clock use for ``store``: built from the
    flightlog.toml found as usual, rebuilt when the file changes; None without a file or
    without channels (alerting is off)."""
    from flightlog.config import find_config_file

    path = find_config_file()
    if path is None:
        return None
    config = load_respond_config(path)  # the same object until the file changes
    key = id(store)
    with _engines_lock:
        cached = _engines.get(key)
        if cached is None or cached[0] is not store or cached[1] is not config:
            if cached is None or cached[0] is not store:
                store.add_close_hook(lambda: _forget(key))
            engine = Engine(store, config) if config.enabled else None
            _engines[key] = (store, config, engine)
        return _engines[key][2]


def _forget(key: int) -> None:
    with _engines_lock:
        _engines.pop(key, None)


def _run(work: Sequence[EngineWork], engine: Engine) -> None:
    for w in work:
        try:
            w(engine)
        except Exception:  # the layer above logs its own; never stop the engine
            log.exception("work before the response tick failed: %r", w)


def on_runs_ended(
    store: Store, run_ids: Sequence[str], *, before_tick: Sequence[EngineWork] = ()
) -> None:
    """The run-end pipeline's respond stage (``flightlog.pipeline``): fold the ended runs into
    incidents (from their stored attributions), run ``before_tick`` (the SLO evaluation),
    tick. A no-op unless a ``flightlog.toml`` with channels is present."""
    engine = engine_for(store)
    if engine is None:
        return
    engine.process_runs(run_ids)
    _run(before_tick, engine)
    engine.tick()


def on_clock(store: Store, *, before_tick: Sequence[EngineWork] = ()) -> None:
    """The server clock's periodic respond work: ``before_tick`` (the SLO evaluation), then
    group, page, escalate, resolve and deliver what is due, whether or not a run ended."""
    engine = engine_for(store)
    if engine is None:
        return
    _run(before_tick, engine)
    engine.tick()


def watch(
    store: Store,
    engine: Engine,
    *,
    interval_s: float = 5.0,
    once: bool = False,
    since_ns: int | None = None,
    on_pass: Callable[[list[int], TickResult], None] | None = None,
    stop: threading.Event | None = None,
    before_tick: Sequence[EngineWork] = (),
) -> None:
    """Poll ``store`` for ended runs and run the engine, until ``stop`` is set (or once);
    ``before_tick`` runs on each pass between recording and the tick."""
    while True:
        try:
            touched = engine.process_runs(engine.pending_runs(since_ns))
            for w in before_tick:
                w(engine)
            result = engine.tick()
        except Exception:
            if once:
                raise
            # A passing problem (the store locked, a receiver misbehaving) must not stop the
            # watcher: everything it has not done is still in the store for the next pass.
            log.exception("flightlog watch: pass failed; retrying in %.1fs", interval_s)
        else:
            if on_pass is not None:
                on_pass(touched, result)
        if once or (stop is not None and stop.is_set()):
            return
        if stop is not None:
            if stop.wait(interval_s):
                return
        else:
            time.sleep(interval_s)
