"""Spectrum-based fault localisation across runs of one workflow (Ochiai, DStar).

Each run is a "test": passed (succeeded) or failed. Its "coverage" is the set of signature
elements of its steps: the step itself, its agent, model and prompt/template/version
attributes, and output features (empty, JSON type). An element that occurs in most failed
runs and few passed ones is suspicious:

- Ochiai:  ef / sqrt(F * (ef + ep))            (Abreu et al., 2007)
- DStar:   ef^2 / (ep + (F - ef))              (Wong et al., 2014, with * = 2)

where ef/ep are the failed/passed runs containing the element and F the failed runs. The
result is supporting evidence ("failures began with planner prompt_version v13"), and an
alternative method when a run carries little evidence of its own.
"""

from __future__ import annotations

import math
import re
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flightlog.detect import features as fx
from flightlog.detect.context import RunContext, decode, is_capture_marker
from flightlog.model import RunRecord, Step
from flightlog.store.base import RunQuery

if TYPE_CHECKING:
    from flightlog.store.base import StoreReader

SPECTRUM_RUNS = 200
_VERSIONED = re.compile(r"(prompt|template|version)", re.IGNORECASE)


@dataclass(slots=True)
class Element:
    key: str
    step_name: str
    label: str
    ef: int = 0
    ep: int = 0
    first_failed_ns: int | None = None
    first_failed_run: str | None = None
    step_id: str | None = None  # the matching step in the run being attributed
    ochiai: float = 0.0
    dstar: float = 0.0


@dataclass(slots=True)
class Spectrum:
    workflow: str
    failed: int
    passed: int
    ranked: list[Element] = field(default_factory=list)
    top: Element | None = None

    def sentence(self) -> str:
        t = self.top
        if t is None:
            return ""
        return (
            f"across {self.failed + self.passed} runs of {self.workflow}, failures coincide with "
            f"{t.label} (Ochiai {t.ochiai:.2f}, DStar {t.dstar:.1f}: in {t.ef} of {self.failed} "
            f"failed and {t.ep} of {self.passed} passed runs)"
            + (
                f"; failures began with {t.label} in run {t.first_failed_run[:12]}"
                if t.first_failed_run
                else ""
            )
        )


def signature(step: Step, output: Any) -> dict[str, str]:
    """Signature elements of one step: key -> readable label."""
    name = step.name
    out = {f"step:{name}": f"step {name}"}
    if step.agent:
        out[f"agent:{name}:{step.agent}"] = f"{name} by agent {step.agent}"
    if step.model:
        out[f"model:{name}:{step.model}"] = f"{name} model {step.model}"
    tool = step.attributes.get("tool") or step.attributes.get("tool.name")
    if isinstance(tool, str):
        out[f"tool:{name}:{tool}"] = f"{name} tool {tool}"
    for k, v in sorted(step.attributes.items()):
        if _VERSIONED.search(k) and isinstance(v, (str, int, float)) and not isinstance(v, bool):
            who = step.agent or name
            out[f"attr:{name}:{k}={v}"] = f"{who} {k} {v}"
    if step.status == "error":
        out[f"status:{name}:error"] = f"{name} raising"
    elif output is not None and not is_capture_marker(output):
        if fx.is_empty(output):
            out[f"out:{name}:empty"] = f"{name} returning an empty output"
        out[f"type:{name}:{fx.json_type(output)}"] = f"{name} returning {fx.json_type(output)}"
    return out


_cache_lock = threading.Lock()
# store -> workflow -> [runs counted, rows (newest first), lookups since counted]: owned by
# the store object (gone with it) and bounded to CACHED_WORKFLOWS per store, least recent out.
_caches: weakref.WeakKeyDictionary[Any, OrderedDict[str, list[Any]]] = weakref.WeakKeyDictionary()
CACHED_WORKFLOWS = 256


def _cache_of(store: StoreReader) -> OrderedDict[str, list[Any]]:
    """The store's spectrum cache (call with ``_cache_lock`` held); a store that cannot be
    weakly referenced gets a throwaway one (nothing cached, nothing leaked)."""
    try:
        cache = _caches.get(store)
        if cache is None:
            cache = _caches[store] = OrderedDict()
        return cache
    except TypeError:
        return OrderedDict()


def _remember(store: StoreReader, workflow: str, entry: list[Any]) -> None:
    cache = _cache_of(store)
    cache[workflow] = entry
    cache.move_to_end(workflow)
    while len(cache) > CACHED_WORKFLOWS:
        cache.popitem(last=False)


Row = tuple[str, bool, int, dict[str, str]]


def _row(rec: RunRecord, payloads: dict[str, bytes]) -> Row:
    sig: dict[str, str] = {}
    for s in rec.steps:
        value = decode(payloads.get(s.output_hash)) if s.output_hash else None
        if not isinstance(value, (dict, list, str, int, float, bool)) and value is not None:
            value = None
        sig.update(signature(s, value))
    return (rec.run.id, rec.run.status != "succeeded", rec.run.started_ns, sig)


def _runs(store: StoreReader, workflow: str) -> list[Row]:
    with _cache_lock:
        hit = _cache_of(store).get(workflow)
        # As for histories: N >= 20 runs cannot grow by a tenth in fewer than N/10 ended
        # runs, so counting (O(N)) is skipped until then; runs the pipeline saw are folded in
        # by ``observe`` as they end.
        if hit is not None and hit[0] >= 20 and hit[2] < hit[0] // 10:
            hit[2] += 1
            return hit[1]  # type: ignore[no-any-return]
    total = store.count_runs(RunQuery(workflow=workflow))
    # Rebuilt when the workflow's runs grew by a tenth (or are few): a burst of failures must
    # not re-read 200 runs per failed run.
    if hit and (hit[0] == total or (total >= 20 and total - hit[0] < total / 10)):
        with _cache_lock:
            hit[2] = 0
        return hit[1]  # type: ignore[no-any-return]
    runs = [
        r
        for r in store.list_runs(RunQuery(workflow=workflow, limit=SPECTRUM_RUNS))
        if r.status in ("failed", "degraded", "succeeded")
    ]
    records = [store.get_record(r.id) for r in runs]
    hashes = {s.output_hash for rec in records for s in rec.steps if s.output_hash}
    payloads = store.get_payloads(hashes) if hashes else {}
    rows = [_row(rec, payloads) for rec in records]
    with _cache_lock:
        _remember(store, workflow, [total, rows, 0])
    return rows


def observe(ctx: RunContext) -> None:
    """Fold a run that just ended into its workflow's cached spectrum (run-end pipeline):
    one row computed from what the pipeline already loaded, never a re-read of the
    workflow's runs."""
    run = ctx.run
    if run.status not in ("failed", "degraded", "succeeded"):
        return
    with _cache_lock:
        hit = _cache_of(ctx.store).get(run.workflow)
        if hit is None or any(r[0] == run.id for r in hit[1]):
            return
    row = _row(ctx.record, ctx._load_payloads())
    with _cache_lock:
        if _cache_of(ctx.store).get(run.workflow) is hit:
            hit[0] += 1
            hit[1] = [row, *hit[1][: SPECTRUM_RUNS - 1]]


def localize(store: StoreReader, workflow: str, ctx: RunContext | None = None) -> Spectrum | None:
    """Rank signature elements of the workflow's runs; ``top`` is the most suspicious element
    present in ``ctx``'s run (if given), requiring at least 2 failed and 2 passed runs."""
    rows = _runs(store, workflow)
    failed = sum(1 for r in rows if r[1])
    passed = len(rows) - failed
    if failed < 2 or passed < 2:
        return None
    elements: dict[str, Element] = {}
    for run_id, is_failed, started, sig in rows:
        for k, label in sig.items():
            e = elements.get(k)
            if e is None:
                e = elements[k] = Element(k, k.split(":")[1], label)
            if is_failed:
                e.ef += 1
                if e.first_failed_ns is None or started < e.first_failed_ns:
                    e.first_failed_ns, e.first_failed_run = started, run_id
            else:
                e.ep += 1
    for e in elements.values():
        e.ochiai = e.ef / math.sqrt(failed * (e.ef + e.ep)) if e.ef else 0.0
        denom = e.ep + (failed - e.ef)
        e.dstar = (e.ef**2 / denom) if denom else float(e.ef**2) * 10
    ranked = sorted(elements.values(), key=lambda e: (-e.ochiai, -e.dstar, e.key))
    spec = Spectrum(workflow, failed, passed, ranked=ranked[:20])
    present: dict[str, str] = {}
    if ctx is not None:
        for s in ctx.steps:
            value = ctx.output(s) if s.status == "ok" else None
            for k in signature(s, value):
                present.setdefault(k, s.id)
    for e in ranked:
        # Only elements that separate failures from passes; "the step ran" rarely does.
        if e.ef < 2 or e.ochiai < 0.7 or e.key.startswith("step:"):
            continue
        if ctx is not None and e.key not in present:
            continue
        e.step_id = present.get(e.key)
        spec.top = e
        break
    return spec
