"""A drill file, ``DRILL.toml``::

[drill]
name = "claims: search outage"
entry = "myapp.claims:triage"        # module:function, called once per run
inputs = [{ id = "C-1", amount = 1200 }, { id = "C-2", amount = 800 }]  # cycled
runs = 20                            # runs with faults armed
history = 10                         # fault-free runs first: the baseline detection uses
seed = 7                             # the same seed injects the same faults
within = "60s"                       # T: the owner must be paged within this
config = "flightlog.toml"            # teams and [[owners]] rules (optional)
store = "sqlite:///drill.db"         # where the drill's runs go (default: a temporary store)
path = ["."]                         # prepended to sys.path, relative to this file

[[fault]]
step = "search_policy"
kind = "empty"                       # see flightlog.drills.faults.KINDS
probability = 0.5                    # per call of the step
expect_root = "search_policy"        # default: the step itself
expect_owner = "search-team"         # default: the step's owner
expect_failure_point = "validate_claim"  # default: the step or any step after it
params = { }                         # per kind: seconds, timeout, field, value, keep, ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flightlog.config import parse_config
from flightlog.drills.faults import KINDS, Fault
from flightlog.errors import ConfigurationError

DRILL_KEYS = {
    "name",
    "entry",
    "inputs",
    "input",
    "runs",
    "history",
    "seed",
    "within",
    "config",
    "store",
    "path",
}
FAULT_KEYS = {
    "step",
    "kind",
    "probability",
    "expect_root",
    "expect_owner",
    "expect_failure_point",
    "params",
}


@dataclass
class DrillSpec:
    name: str
    entry: str
    faults: list[Fault]
    inputs: list[Any] = field(default_factory=lambda: [None])
    runs: int = 10
    history: int = 10
    seed: int | str = 0
    within_ns: int = 60 * 10**9
    config: Path | None = None
    store: str | None = None
    path: list[Path] = field(default_factory=list)
    source: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "entry": self.entry,
            "runs": self.runs,
            "history": self.history,
            "seed": self.seed,
            "within_ns": self.within_ns,
            "faults": [
                {
                    "step": f.step,
                    "kind": f.kind,
                    "probability": f.probability,
                    "expect_root": f.root,
                    "expect_owner": f.expect_owner,
                }
                for f in self.faults
            ],
        }


def parse_drill(text: str, source: Path | None = None) -> DrillSpec:
    """Validate a drill file; errors name the line."""
    from flightlog.respond.config import parse_duration

    cfg = parse_config(text, source)
    base = source.parent if source else Path.cwd()
    d = cfg.data.get("drill")
    if not isinstance(d, dict):
        raise ConfigurationError(f"{cfg.where()}: a drill file needs a [drill] table")
    bad = set(d) - DRILL_KEYS
    if bad:
        key = sorted(bad)[0]
        raise ConfigurationError(
            f"{cfg.where('drill', key)}: unknown setting {key!r} in [drill]; expected one of "
            f"{', '.join(sorted(DRILL_KEYS))}"
        )
    entry = d.get("entry")
    if not isinstance(entry, str) or ":" not in entry:
        raise ConfigurationError(
            f'{cfg.where("drill", "entry")}: entry must be "module:function", got {entry!r}'
        )

    def whole(key: str, default: int, low: int) -> int:
        v = d.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ConfigurationError(
                f"{cfg.where('drill', key)}: {key} must be a whole number >= {low}, got {v!r}"
            )
        return v

    if "inputs" in d:
        inputs = d["inputs"]
        if not isinstance(inputs, list) or not inputs:
            raise ConfigurationError(f"{cfg.where('drill', 'inputs')}: inputs must be a list")
    else:
        inputs = [d.get("input")]
    raw_faults = cfg.data.get("fault") or []
    if not isinstance(raw_faults, list) or not raw_faults:
        raise ConfigurationError(
            f"{cfg.where()}: a drill needs at least one [[fault]] (step = ..., kind = ...)"
        )
    faults = []
    for i, f in enumerate(raw_faults):
        where = cfg.where("fault", i)
        if not isinstance(f, dict):
            raise ConfigurationError(f"{where}: each [[fault]] must be a table")
        bad = set(f) - FAULT_KEYS
        if bad:
            key = sorted(bad)[0]
            raise ConfigurationError(
                f"{cfg.where('fault', i, key)}: unknown setting {key!r} in [[fault]]; expected "
                f"one of {', '.join(sorted(FAULT_KEYS))}"
            )
        if not isinstance(f.get("step"), str) or not f["step"]:
            raise ConfigurationError(f'{where}: [[fault]] needs step = "<step name>"')
        if f.get("kind") not in KINDS:
            raise ConfigurationError(
                f"{cfg.where('fault', i, 'kind')}: kind must be one of {', '.join(KINDS)}, "
                f"got {f.get('kind')!r}"
            )
        p = f.get("probability", 1.0)
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise ConfigurationError(
                f"{cfg.where('fault', i, 'probability')}: probability must be in [0, 1]"
            )
        faults.append(
            Fault(
                step=f["step"],
                kind=f["kind"],
                probability=float(p),
                params=dict(f.get("params") or {}),
                expect_root=f.get("expect_root"),
                expect_owner=f.get("expect_owner"),
                expect_failure_point=f.get("expect_failure_point"),
            )
        )
    config = d.get("config")
    return DrillSpec(
        name=str(d.get("name") or (source.stem if source else "drill")),
        entry=entry,
        faults=faults,
        inputs=list(inputs),
        runs=whole("runs", 10, 1),
        history=whole("history", 10, 0),
        seed=d.get("seed", 0),
        within_ns=parse_duration(d.get("within", "60s"), cfg.where("drill", "within")),
        config=(base / config) if isinstance(config, str) else None,
        store=d.get("store"),
        path=[base / p for p in (d.get("path") or ["."])],
        source=source,
    )


def load_drill(path: str | Path) -> DrillSpec:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read drill file {p}: {exc.strerror or exc}") from exc
    return parse_drill(text, p)
