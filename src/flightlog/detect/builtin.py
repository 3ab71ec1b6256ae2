"""The built-in detectors. Each is a plain callable ``detector(run: RunContext) -> findings``.

Detectors that compare against history (empty outputs, shapes, values, latency, ...) stay
silent until the step has enough successful samples: a hunch is not a finding.

Size: one module on purpose, over 500 lines: the built-in detectors are short independent
functions that share the history helpers at the top; a detector family that grows gets its
own module.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson

from flightlog.detect import features as fx
from flightlog.detect.context import PathStats, RunContext, StepSample
from flightlog.detect.registry import budgets_for
from flightlog.model import Finding, Step
from flightlog.otel.conventions import is_version_key

MIN_SAMPLES = 3  # successful samples of a step before "usually" means anything
MIN_VALUE_SAMPLES = 5
MIN_CATEGORY_SAMPLES = 8  # "never seen" means little until a value has had chances to appear
LATENCY_MIN_EXCESS_NS = 100_000_000  # a latency outlier must also be 100 ms slower than usual

_TIMEOUT = re.compile(r"time(d)?[ _-]?out|deadline exceeded", re.IGNORECASE)


def _outputs(run: RunContext) -> Iterator[tuple[Step, Any, list[StepSample]]]:
    """Steps that ended normally with a recorded output, with their baseline samples."""
    return iter(run.outputs())


def _own_error(run: RunContext, step: Step) -> bool:
    """Did the step's error originate in it (rather than propagate from a child)?"""
    if step.error is None:
        return step.status == "error"
    origin = step.error.origin_step_id
    if origin:
        return origin == step.id or run.step(origin) is None
    # No recorded origin (ingested spans): an error with a descendant that ended in error
    # first is that exception passing through (frameworks re-wrap it, so messages differ).
    end = step.ended_ns or step.started_ns
    by_id = {s.id: s for s in run.steps}
    for c in run.steps:
        if c.status != "error" or c.id == step.id or (c.ended_ns or c.started_ns) > end:
            continue
        parent, hops = c.parent_id, 0
        while parent is not None and hops < 1000:
            if parent == step.id:
                return False
            p = by_id.get(parent)
            parent, hops = (p.parent_id if p else None), hops + 1
    return True


def errors(run: RunContext) -> Iterator[Finding]:
    """Exceptions and error status, at the step where they originated; timeouts by name."""
    for step in run.steps:
        if step.status != "error" or not _own_error(run, step):
            continue
        err = step.error
        etype = err.type if err else "error"
        msg = err.message if err else "step ended with error status"
        if _TIMEOUT.search(f"{etype} {msg}"):
            yield run.finding(
                "errors",
                "timeout",
                f"timed out: {etype}: {msg}"[:300],
                step=step,
                error_type=etype,
                error=msg[:500],
            )
        else:
            yield run.finding(
                "errors",
                "exception",
                f"raised {etype}: {msg}"[:300],
                step=step,
                error_type=etype,
                error=msg[:500],
            )
    r = run.run
    if r.status == "failed" and r.error is not None and not run.steps:
        yield run.finding(
            "errors",
            "run_exception",
            f"run raised {r.error.type}: {r.error.message}"[:300],
            error_type=r.error.type,
            error=r.error.message[:500],
        )


def _http_status(value: Any) -> int | None:
    if not isinstance(value, dict):
        return None
    for key in ("status_code", "http_status", "status", "code", "statusCode"):
        v = value.get(key)
        if isinstance(v, int) and not isinstance(v, bool) and 400 <= v <= 599:
            return v
    return None


def _error_field(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    for key in ("error", "errors", "error_message", "exception", "fault"):
        v = value.get(key)
        if v not in (None, "", [], {}, False):
            return f"{key}={_short(v)}"
    status = value.get("status")
    if isinstance(status, str) and status.lower() in ("error", "failed", "failure", "fail"):
        return f"status={status!r}"
    return None


def _short(v: Any, n: int = 120) -> str:
    text = v if isinstance(v, str) else orjson.dumps(v, default=repr).decode()
    return text if len(text) <= n else text[: n - 1] + "…"


def _usual_rate(samples: list[StepSample], pred: Any) -> float:
    outs = [s.output for s in samples]
    if not outs:
        return 0.0
    return sum(1 for o in outs if pred(o)) / len(outs)


def tool_errors(run: RunContext) -> Iterator[Finding]:
    """Outputs that carry an error: error fields, HTTP 4xx/5xx, error-like text."""
    for step, value, base in _outputs(run):
        code = _http_status(value)
        if code is not None and _usual_rate(base, lambda o: _http_status(o) is not None) < 0.2:
            yield run.finding(
                "tool_errors",
                "http_error",
                f"returned HTTP {code}",
                step=step,
                status=code,
                output=_short(value, 300),
            )
            continue
        field = _error_field(value)
        if field and _usual_rate(base, lambda o: _error_field(o) is not None) < 0.2:
            yield run.finding(
                "tool_errors",
                "error_field",
                f"returned an error ({field})",
                step=step,
                field=field,
                output=_short(value, 300),
            )
            continue
        if _conversation_message(step) and step.attributes.get("message.kind") != "execution":
            continue  # an agent's reasoning mentions "error" and "not found" in passing
        if step.kind in ("tool", "retrieval", "function") or isinstance(value, str):
            text = value if isinstance(value, str) else fx.text_of(value)
            m = fx.search(fx.ERROR_TEXT, text) if text and len(text) < 2000 else None
            if m and _usual_rate(base, lambda o: _has_error_text(o)) < 0.2:
                yield run.finding(
                    "tool_errors",
                    "error_text",
                    f"returned error-like text: {_short(text)!r}",
                    step=step,
                    match=m.group(0),
                    output=_short(text, 300),
                    severity="error" if base else "warning",
                )


def _has_error_text(o: Any) -> bool:
    text = o if isinstance(o, str) else fx.text_of(o)
    return bool(text) and bool(fx.search(fx.ERROR_TEXT, text))


_DOC_KEYS = {"text", "content", "page_content", "document", "body", "snippet", "passage"}


def _noun(path: str, samples: list[Any] | None = None) -> str:
    """What a list holds, for messages: its field name, or "documents" for records with
    text, else "items"."""
    if path != fx.ROOT:
        return path.rsplit(".", 1)[-1].replace("_", " ")
    for o in samples or []:
        if isinstance(o, list) and o and isinstance(o[0], dict):
            return "documents" if _DOC_KEYS & set(o[0]) else "records"
    return "items"


def empty_output(run: RunContext) -> Iterator[Finding]:
    """Empty or null outputs (or empty lists/strings in a field) where the step is usually not."""
    for step, value, base in _outputs(run):
        if len(base) < MIN_SAMPLES:
            continue
        if fx.is_empty(value):
            outs = [s.output for s in base]
            nonempty = sum(1 for o in outs if not fx.is_empty(o))
            if nonempty / len(outs) >= 0.9:
                sizes = [float(fx.size(o) or 0) for o in outs if fx.size(o)]
                usual = fx.span(sizes) if sizes else "a value"
                found = "nothing" if value in (None, "") else f"0 {_noun(fx.ROOT, outs)}"
                if isinstance(value, dict) and value:
                    found = "only empty fields"
                yield run.finding(
                    "empty_output",
                    "empty",
                    f"returned {found} where it usually returns {usual}",
                    step=step,
                    path=fx.ROOT,
                    usual=usual,
                    samples=len(outs),
                    nonempty=nonempty,
                    output=_short(value),
                )
                continue
        fields = run.field_map(step)
        for path, v in fields.items():
            if path == fx.ROOT or not isinstance(v, (list, str)) or len(v) > 0:
                continue
            raw = [b.fields().get(path) for b in base if isinstance(b.output, dict)]
            hist: list[Any] = [h for h in raw if isinstance(h, (list, str))]
            if len(hist) < MIN_SAMPLES:
                continue
            lens = [len(h) for h in hist if len(h) > 0]
            if len(lens) / len(hist) >= 0.9:
                noun = _noun(path)
                usual = fx.span([float(n) for n in lens])
                yield run.finding(
                    "empty_output",
                    "empty",
                    f"returned 0 {noun} where it usually returns {usual}"
                    if isinstance(v, list)
                    else f"returned an empty {noun} where it is usually {usual} characters long",
                    step=step,
                    path=path,
                    usual=usual,
                    samples=len(hist),
                )
                break


def shape_change(run: RunContext) -> Iterator[Finding]:
    """An output whose type or fields differ from the step's successful history."""
    for step, value, _base in _outputs(run):
        stats = run.stats(step)
        if stats.present < MIN_SAMPLES:
            continue
        usual_type = stats.usual_type()
        now_type = fx.json_type(value)
        if usual_type and now_type != usual_type and now_type != "null":
            yield run.finding(
                "shape_change",
                "type",
                f"returned {now_type} where it always returned {usual_type}",
                step=step,
                usual=usual_type,
                found=now_type,
            )
            continue
        parts: list[str] = []
        missing_all: list[str] = []
        new_all: list[str] = []
        changed_all: list[str] = []
        for path, v in run.field_map(step).items():
            if not isinstance(v, dict):
                continue
            n_dicts, key_counts, usual_keys, types = stats.path(path).dict_profile()
            if n_dicts < MIN_SAMPLES:
                continue
            where = "" if path == fx.ROOT else f"{path}."
            missing = usual_keys.difference(v)
            if missing:
                missing_all += [where + k for k in sorted(missing)]
            new = [k for k in v if k not in key_counts]
            if new:
                new_all += [where + k for k in sorted(new)]
            changed = [
                k
                for k in v
                if k in usual_keys and (t := types.get(k)) and fx.json_type(v[k]) not in (t, "null")
            ]
            for k in sorted(changed):
                changed_all.append(f"{where}{k}: {types[k]} -> {fx.json_type(v[k])}")
        if missing_all:
            parts.append("missing field(s) " + ", ".join(missing_all))
        if new_all:
            parts.append("new field(s) " + ", ".join(new_all))
        if changed_all:
            parts.append("changed type " + "; ".join(changed_all))
        if parts:
            yield run.finding(
                "shape_change",
                "fields",
                "output shape changed vs successful runs: " + "; ".join(parts),
                step=step,
                missing=missing_all,
                new=new_all,
                changed=changed_all,
                samples=stats.present,
                severity="error" if missing_all or changed_all else "warning",
            )


def value_anomaly(run: RunContext) -> Iterator[Finding]:
    """Numbers far outside the step's usual range; categories never seen; much shorter output."""
    for step, _value, _base in _outputs(run):
        stats = run.stats(step)
        if stats.present < MIN_VALUE_SAMPLES:
            continue
        passed_in: set[tuple[str, Any] | None] | None = None
        for path, v in run.field_map(step).items():
            t = type(v)
            if t is dict or v is None:
                continue  # none of the three checks looks at an object or a null
            hist = stats.path(path)
            if hist.count < MIN_VALUE_SAMPLES:
                continue
            # Each check answers None for a value not of its types: only those that can
            # look at this one are called, in the same order.
            if t is str:
                f = _categorical(run, step, path, v, hist) or _length(run, step, path, v, hist)
            elif t is list:
                f = _length(run, step, path, v, hist)
            elif t is int or t is float:
                f = _numeric(run, step, path, v, hist)
            elif t is bool:
                f = _categorical(run, step, path, v, hist)
            else:  # another type (never from decoded JSON): every check, as they are
                f = _numeric(run, step, path, v, hist) or _categorical(run, step, path, v, hist)
                f = f or _length(run, step, path, v, hist)
            if f is None:
                continue
            if passed_in is None:
                passed_in = _input_leaves(run.input(step))
            if _passed_through(v, passed_in):
                continue  # passed through from the input: the anomaly was made upstream
            yield f


def _leaf_key(v: Any) -> tuple[str, Any] | None:
    if isinstance(v, bool):
        return ("b", v)
    if isinstance(v, (int, float)):
        return ("n", float(v))
    if isinstance(v, str):
        return ("s", v)
    return None


def _input_leaves(value: Any, limit: int = 2000) -> set[tuple[str, Any] | None]:
    """Scalar values anywhere in a step's input (bounded)."""
    out: set[tuple[str, Any] | None] = set()
    stack = [value]
    while stack and len(out) < limit:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif v is not None:
            out.add(_leaf_key(v))
    out.discard(None)
    return out


def _passed_through(v: Any, passed_in: set[tuple[str, Any] | None]) -> bool:
    """Is ``v`` one of the input's values, or (as text) inside one of its strings?"""
    key = _leaf_key(v)
    if key is None:
        return False
    if key in passed_in:
        return True
    text = v if isinstance(v, str) else (None if isinstance(v, bool) else fx._fmt_num(float(v)))
    if not text or len(text) < 3:
        return False
    return any(k is not None and k[0] == "s" and text in k[1] for k in passed_in)


def _numeric(run: RunContext, step: Step, path: str, v: Any, hist: PathStats) -> Finding | None:
    x = fx.number(v)
    xs = hist.numbers  # sorted
    if x is None or len(xs) < MIN_VALUE_SAMPLES or fx.timestamp_ns(path, v) is not None:
        return None
    lo, hi = xs[0], xs[-1]
    med = fx.sorted_median(xs)
    margin = max(0.5 * (hi - lo), 0.25 * abs(med))
    if lo - margin <= x <= hi + margin:
        return None
    z = fx.robust_z(x, xs)
    if z < 6:
        return None
    name = "output" if path == fx.ROOT else path
    return run.finding(
        "value_anomaly",
        f"number:{path}",
        f"{name} = {fx._fmt_num(x)} where it is usually {fx.span(xs)}",
        step=step,
        path=path,
        value=x,
        usual=fx.span(xs),
        robust_z=round(min(z, 1e6), 1),
        samples=len(xs),
        severity="warning",
    )


def _categorical(run: RunContext, step: Step, path: str, v: Any, hist: PathStats) -> Finding | None:
    if isinstance(v, bool):
        kind: type = bool
    elif isinstance(v, str) and 0 < len(v) <= 64:
        kind = str
    else:
        return None
    distinct = hist.categories(kind)  # value -> how many samples hold it
    if v in distinct:
        return None
    n_vals = sum(distinct.values())
    if n_vals < MIN_CATEGORY_SAMPLES:
        return None
    if len(distinct) > max(2, n_vals // 4):
        return None  # free-form or id-like values: novelty means nothing
    if kind is str and fx.timestamp_ns(path, v) is not None:
        return None  # a time is not a category
    name = "output" if path == fx.ROOT else path
    usual = ", ".join(repr(x) for x in sorted(distinct, key=str)[:5])
    return run.finding(
        "value_anomaly",
        f"category:{path}",
        f"{name} = {v!r}, never seen in {n_vals} successful runs (usually {usual})",
        step=step,
        path=path,
        value=v,
        usual=sorted(map(str, distinct))[:10],
        samples=n_vals,
        severity="warning",
    )


def _length(run: RunContext, step: Step, path: str, v: Any, hist: PathStats) -> Finding | None:
    if not isinstance(v, (str, list)) or len(v) == 0:
        return None
    lens = hist.lengths["str" if isinstance(v, str) else "list"]  # sorted
    if len(lens) < MIN_VALUE_SAMPLES:
        return None
    n = float(len(v))
    if n >= 0.5 * lens[0]:
        return None
    if isinstance(v, str) and fx.timestamp_ns(path, v) is not None:
        return None
    if fx.robust_z(n, lens) < 4:
        return None
    name = "output" if path == fx.ROOT else path
    unit = "characters" if isinstance(v, str) else "items"
    return run.finding(
        "value_anomaly",
        f"short:{path}",
        f"{name} has {int(n)} {unit} where it usually has {fx.span(lens)}",
        step=step,
        path=path,
        length=int(n),
        usual=fx.span(lens),
        samples=len(lens),
        severity="warning",
    )


def attribute_change(run: RunContext) -> Iterator[Finding]:
    """A prompt version, template or model never used in the step's successful runs."""
    for step in run.steps:
        base = run.baseline(step)
        if len(base) < MIN_VALUE_SAMPLES:
            continue
        known = _version_keys
        attrs = {}
        for k, v in step.attributes.items():
            hit = known.get(k)
            if hit is None:
                hit = _version_key(k)
            if hit:
                attrs[k] = v
        if step.model:
            attrs["model"] = step.model
        for key, v in sorted(attrs.items()):
            if not isinstance(v, (str, int, float)) or isinstance(v, bool):
                continue
            # The baseline's values counted (kept up to date as runs come and go) answer
            # "seen before?" without a pass over the samples; the message reads them.
            seen = run.stats(step).attribute_values(key)
            if seen is not None and (sum(seen.values()) < MIN_VALUE_SAMPLES or v in seen):
                continue
            hist = [s.model if key == "model" else s.attributes.get(key) for s in base]
            hist = [h for h in hist if h is not None]
            if len(hist) < MIN_VALUE_SAMPLES or v in hist:
                continue
            usual = ", ".join(str(x) for x in sorted(set(map(str, hist)))[:5])
            yield run.finding(
                "attribute_change",
                f"attr:{key}",
                f"{key} {v} was never used in {len(hist)} successful runs (they used {usual})",
                step=step,
                attribute=key,
                value=v,
                usual=sorted(set(map(str, hist)))[:10],
                samples=len(hist),
                severity="warning",
            )


_version_keys: dict[str, bool] = {}


def _version_key(key: str) -> bool:
    """``is_version_key``, remembered per attribute name (a few thousand at most)."""
    hit = _version_keys.get(key)
    if hit is None:
        if len(_version_keys) > 4096:
            _version_keys.clear()
        hit = _version_keys[key] = is_version_key(key)
    return hit


def stale_data(run: RunContext) -> Iterator[Finding]:
    """Timestamps in an output far older (relative to the run) than the step usually returns."""
    for step, _value, base in _outputs(run):
        if len(base) < MIN_VALUE_SAMPLES:
            continue
        for path, v in run.field_map(step).items():
            ts = fx.timestamp_ns(path, v)
            if ts is None:
                continue
            ages = []
            for s in base:
                if s.output is None:
                    continue
                h = s.fields().get(path)
                hts = fx.timestamp_ns(path, h) if h is not None else None
                if hts is not None:
                    ages.append(float(s.run_started_ns - hts))
            if len(ages) < MIN_VALUE_SAMPLES:
                continue
            age = float(run.run.started_ns - ts)
            oldest = max(ages)
            if age <= max(2 * oldest, oldest + 3_600e9) or fx.robust_z(age, ages) < 6:
                continue
            yield run.finding(
                "stale_data",
                f"stale:{path}",
                f"{path} is {_age(age)} old where it is usually at most {_age(oldest)} old",
                step=step,
                path=path,
                value=v,
                age_s=round(age / 1e9),
                usual_max_age_s=round(oldest / 1e9),
                samples=len(ages),
            )


def _age(ns: float) -> str:
    from flightlog._format import span

    return span(ns)


def latency(run: RunContext) -> Iterator[Finding]:
    """Durations far above the step's usual (median/MAD), and steps that never ended."""
    for step in run.steps:
        d = step.duration_ns
        if d is None:
            if run.run.status in ("failed", "degraded", "succeeded"):
                yield run.finding(
                    "latency",
                    "unfinished",
                    "never ended (still open when the run ended)",
                    step=step,
                    severity="warning",
                )
            continue
        xs = run.stats(step).durations  # sorted
        if len(xs) < MIN_VALUE_SAMPLES:
            continue
        med = fx.sorted_median(xs)
        if d < 3 * med or d - med < LATENCY_MIN_EXCESS_NS or fx.robust_z(d, xs) < 6:
            continue
        yield run.finding(
            "latency",
            "outlier",
            f"took {d / 1e6:.0f} ms where it usually takes {med / 1e6:.0f} ms",
            step=step,
            duration_ms=round(d / 1e6, 1),
            median_ms=round(med / 1e6, 1),
            samples=len(xs),
            severity="warning",
        )


LOOP_REPEATS = 3


def loops(run: RunContext) -> Iterator[Finding]:
    """The same step with the same input repeated (more often than any successful run does)."""
    groups: dict[tuple[str, str, str], list[Step]] = {}
    for step in run.steps:
        if step.attributes.get("message.kind") in _ORCHESTRATION:
            continue  # "Next speaker: ..." and "TERMINATE" repeat by design
        if step.input_hash:
            groups.setdefault((step.name, "input", step.input_hash), []).append(step)
        if step.output_hash and _is_llm(step):
            # A model that keeps deciding the same thing is looping even if its input grows.
            groups.setdefault((step.name, "output", step.output_hash), []).append(step)
    flagged: set[str] = set()
    for (name, same, _), steps in groups.items():
        if steps[0].id in flagged:
            continue
        if len(steps) < LOOP_REPEATS:
            continue
        usual = Counter(s.run_id for s in run.history.of(name, exclude_run=run.run.id))
        if usual and len(steps) <= max(usual.values()):
            continue
        flagged.add(steps[0].id)
        yield run.finding(
            "loops",
            "loop",
            f"repeated {len(steps)} times with the same {same}"
            + (f" (successful runs call it at most {max(usual.values())} times)" if usual else ""),
            step=steps[0],
            repeats=len(steps),
            steps=[s.index for s in steps],
        )


def budget(run: RunContext) -> Iterator[Finding]:
    """Token, cost and step-count overruns: against a declared budget, else against history."""
    limits = budgets_for(run.run, run.detect_config)
    used_tokens = 0
    used_cost = 0.0
    crossed: dict[str, Step] = {}
    for step in run.steps:
        used_tokens += (step.input_tokens or 0) + (step.output_tokens or 0)
        used_cost += step.cost or 0.0
        if "tokens" in limits and used_tokens > limits["tokens"] and "tokens" not in crossed:
            crossed["tokens"] = step
        if "cost" in limits and used_cost > limits["cost"] and "cost" not in crossed:
            crossed["cost"] = step
        if "steps" in limits and step.index > limits["steps"] and "steps" not in crossed:
            crossed["steps"] = step
    used = {"tokens": float(used_tokens), "cost": used_cost, "steps": float(len(run.steps))}
    for key, step in crossed.items():
        yield run.finding(
            "budget",
            f"budget:{key}",
            f"{key} budget exceeded: {fx._fmt_num(used[key])} > {fx._fmt_num(limits[key])}",
            step=step,
            budget=limits[key],
            used=used[key],
        )
    h = run.history
    if h.runs < MIN_VALUE_SAMPLES:
        return
    usual: dict[str, list[int] | list[float]] = {
        "tokens": h.tokens,
        "cost": h.costs,
        "steps": h.step_counts,
    }
    for key, xs in usual.items():
        if key in crossed or not any(xs):
            continue
        largest = float(max(xs)) * 1.5
        if used[key] <= 0 or (largest == largest and not used[key] > largest):
            continue  # not over 1.5 times the largest: over no median either
        med = statistics.median([float(x) for x in xs])  # fx.median_mad without the MAD
        if used[key] > max(3 * med, largest):
            yield run.finding(
                "budget",
                f"overrun:{key}",
                f"used {fx._fmt_num(used[key])} {key} where successful runs use about "
                f"{fx._fmt_num(med)}",
                used=used[key],
                median=med,
                severity="warning",
            )


_ORCHESTRATION = ("instruction", "thought", "control")


def _conversation_message(step: Step) -> bool:
    """A message of an imported conversation (``flightlog.forensics.transcripts``)."""
    return "message.kind" in step.attributes


def _is_llm(step: Step) -> bool:
    return step.kind in ("llm", "agent") or bool(step.model)


def refusals(run: RunContext) -> Iterator[Finding]:
    """LLM outputs that refuse the task."""
    for step, value, base in _outputs(run):
        if not _is_llm(step):
            continue
        text = fx.text_of(value)
        m = fx.search(fx.REFUSAL_TEXT, text[:4000]) if text else None
        if m and _usual_rate(base, lambda o: bool(fx.search(fx.REFUSAL_TEXT, fx.text_of(o)))) < 0.2:
            yield run.finding(
                "refusals",
                "refusal",
                f"the model refused: {_short(text)!r}",
                step=step,
                match=m.group(0),
            )


_FINISH_KEYS = (
    "finish_reason",
    "gen_ai.response.finish_reasons",
    "llm.finish_reason",
    "stop_reason",
    "finish_reasons",
)


_FINISH_KEY_SET = frozenset(_FINISH_KEYS)


def _finish_reasons(step: Step, value: Any) -> list[str]:
    found: list[str] = []
    for source in (step.attributes, value if isinstance(value, dict) else {}):
        if _FINISH_KEY_SET.isdisjoint(source):
            continue  # none of the keys (the usual case): no lookups one by one
        for key in _FINISH_KEYS:
            v = source.get(key)
            if isinstance(v, str):
                found.append(v)
            elif isinstance(v, list):
                found.extend(x for x in v if isinstance(x, str))
    if isinstance(value, dict) and isinstance(value.get("choices"), list):
        for c in value["choices"]:
            if isinstance(c, dict) and isinstance(c.get("finish_reason"), str):
                found.append(c["finish_reason"])
    return found


def truncation(run: RunContext) -> Iterator[Finding]:
    """LLM outputs cut off by the token limit (finish reason "length" / "max_tokens")."""
    for step in run.steps:
        if step.status != "ok":
            continue
        value = run.output(step)
        reasons = [r.lower() for r in _finish_reasons(step, value)]
        hit = next((r for r in reasons if r in ("length", "max_tokens", "max_output_tokens")), None)
        if hit:
            text = fx.text_of(value)
            yield run.finding(
                "truncation",
                "truncated",
                f"output was truncated (finish reason {hit!r})"
                + (f" after {len(text)} characters" if text else ""),
                step=step,
                finish_reason=hit,
                output_tail=text[-80:] if text else None,
            )


def injection(run: RunContext) -> Iterator[Finding]:
    """Captured content that carries a prompt injection (instructions aimed at a model)."""
    for step, value, _base in _outputs(run):
        raw = run.output_bytes(step)
        if raw is not None and not fx.may_match_json(fx.INJECTION_TEXT, raw):
            continue  # no string in the output can match: none gathered, joined nor searched
        texts = fx.strings(value)
        # One search over the texts joined first: a match in any of them is one there too
        # (the pattern has no anchors; a line break ends a word as the end of a text does).
        joined = "\n".join(t[:20000] for t in texts)
        if not texts or not fx.search(fx.INJECTION_TEXT, joined):
            continue
        for text in texts:
            m = fx.INJECTION_TEXT.search(text[:20000])
            if m:
                quote = _short(text[max(0, m.start() - 20) :], 100)
                yield run.finding(
                    "injection",
                    "prompt_injection",
                    f"output carries a prompt injection: {quote!r}",
                    step=step,
                    match=m.group(0),
                    severity="warning",
                )
                break


def ungrounded(run: RunContext) -> Iterator[Finding]:
    """LLM output fields that always echo the step's input but now hold a value absent from it."""
    for step, value, base in _outputs(run):
        if not _is_llm(step) or not isinstance(value, dict) or len(base) < MIN_VALUE_SAMPLES:
            continue
        stats = run.stats(step)
        inp_text: str | None = None
        for path, v in run.field_map(step).items():
            if path == fx.ROOT or not isinstance(v, str) or not 2 <= len(v) <= 200:
                continue
            hist = stats.path(path)
            seen, grounded = hist.seen, hist.grounded
            if seen < MIN_VALUE_SAMPLES or grounded / seen < 0.9:
                continue
            if inp_text is None:
                inp_text = "\n".join(fx.strings(run.input(step), limit=2000))
            if v not in inp_text:
                yield run.finding(
                    "ungrounded",
                    f"ungrounded:{path}",
                    f"{path} = {v!r} does not appear in the step's input, while in {seen} "
                    "successful runs it always did (hallucinated?)",
                    step=step,
                    path=path,
                    value=v,
                    samples=seen,
                )


BUILTIN = {
    "errors": errors,
    "tool_errors": tool_errors,
    "empty_output": empty_output,
    "shape_change": shape_change,
    "value_anomaly": value_anomaly,
    "attribute_change": attribute_change,
    "stale_data": stale_data,
    "latency": latency,
    "loops": loops,
    "budget": budget,
    "refusals": refusals,
    "truncation": truncation,
    "injection": injection,
    "ungrounded": ungrounded,
}
