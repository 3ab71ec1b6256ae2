"""The demo: an insurance-claim triage workflow of seven steps across six agents.

Offline and deterministic: the two LLM steps are answered by a scripted stand-in. Twenty
claims go through cleanly; the twenty-first cites a legacy policy that the retriever has not
indexed, so ``search_policy`` (step 2) returns nothing, the planner LLM answers without a
clause to cite, and the validator rejects the assessment at step 4 of 7: the failure
surfaces two steps after its cause.

``run_demo()`` records the runs into the demo's own directory (``./flightlog-demo``: its store
and flightlog.toml) and returns a ``DemoResult``; ``SECTIONS`` are the printed parts of
``flightlog demo``, in order. Later capabilities append their own section with ``section``.

One module of about 600 lines on purpose: it is the example a newcomer reads top to bottom
(the workflow, how it is recorded, what is shown), and what it records names this module
(the validator's ``flightlog.demo.ClaimRejected`` is the failure's error type, which
incidents are grouped by): splitting it would change the demo's records for no reader's gain.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import flightlog

if TYPE_CHECKING:
    from flightlog.store.base import Store

WORKFLOW = "claims-triage"

POLICIES: dict[str, list[dict[str, str]]] = {
    "HOME-STD-2024": [
        {
            "id": "HS-4.1",
            "text": "Sudden and accidental escape of water from a fixed installation is covered.",
        },
        {"id": "HS-4.2", "text": "Gradual leaks and wear and tear are excluded."},
        {"id": "HS-7.3", "text": "Storm damage to the building and its contents is covered."},
        {"id": "HS-9.0", "text": "The excess is 250 per claim unless stated otherwise."},
        {"id": "HS-2.5", "text": "Theft following forcible entry is covered up to 20000."},
    ],
    "HOME-PLUS-2025": [
        {"id": "HP-3.1", "text": "Accidental damage to contents is covered, including spills."},
        {"id": "HP-4.1", "text": "Escape of water is covered, including trace and access costs."},
        {"id": "HP-9.0", "text": "The excess is 100 per claim."},
        {"id": "HP-7.3", "text": "Storm and flood damage is covered."},
    ],
    "MOTOR-COMP-2024": [
        {"id": "MC-1.2", "text": "Damage to the insured vehicle from collision is covered."},
        {
            "id": "MC-3.4",
            "text": "Windscreen repair is covered without affecting the no-claims bonus.",
        },
        {"id": "MC-9.0", "text": "The excess is 350 per claim."},
    ],
}

INCIDENTS = [
    ("water", "Water came through the kitchen ceiling after a pipe burst upstairs."),
    ("storm", "A storm blew tiles off the roof and rain damaged the bedroom."),
    ("theft", "Burglars forced the back door and took a laptop and jewellery."),
    ("collision", "Another car reversed into mine in a car park, denting the rear door."),
    ("glass", "A stone chipped and cracked the windscreen on the motorway."),
    ("accident", "Red wine spilled over the living-room carpet during a party."),
]
CATEGORY_POLICY = {
    "water": ["HOME-STD-2024", "HOME-PLUS-2025"],
    "storm": ["HOME-STD-2024", "HOME-PLUS-2025"],
    "theft": ["HOME-STD-2024"],
    "collision": ["MOTOR-COMP-2024"],
    "glass": ["MOTOR-COMP-2024"],
    "accident": ["HOME-PLUS-2025"],
}
CATEGORY_CLAUSE = {
    "water": ("HS-4.1", "HP-4.1"),
    "storm": ("HS-7.3", "HP-7.3"),
    "theft": ("HS-2.5",),
    "collision": ("MC-1.2",),
    "glass": ("MC-3.4",),
    "accident": ("HP-3.1",),
}


class ClaimRejected(Exception):
    """The validator refused an assessment."""


# -- the scripted stand-in for an LLM -------------------------------------------------------
def scripted_llm(prompt: str, *, task: str) -> dict[str, Any]:
    """Answers deterministically from what the prompt contains, like a well-behaved model."""
    if task == "assess":
        cited = sorted({cid for ids in CATEGORY_CLAUSE.values() for cid in ids if cid in prompt})
        if not cited:
            return {
                "covered": True,
                "cited_clauses": [],
                "rationale": "No policy wording was provided; assuming the standard cover applies.",
                "tokens": (len(prompt) // 4, 24),
            }
        return {
            "covered": True,
            "cited_clauses": cited,
            "rationale": f"The loss falls under clause {cited[0]}.",
            "tokens": (len(prompt) // 4, 40),
        }
    return {
        "text": "Dear customer, " + prompt.split("\n", 1)[0][:160],
        "tokens": (len(prompt) // 4, 120),
    }


# -- the seven steps -------------------------------------------------------------------------
@flightlog.step(kind="agent", agent="intake", owner="claims-team")
def intake_claim(claim: dict[str, Any]) -> dict[str, Any]:
    category = claim["category"]
    return {
        "claim_id": claim["claim_id"],
        "category": category,
        "policy": claim["policy"],
        "amount": claim["amount"],
        "summary": f"{category} claim for {claim['amount']}: {claim['text']}",
    }


@flightlog.step(kind="tool", agent="retriever", owner="search-team")
def search_policy(query: str, policy: str) -> list[dict[str, str]]:
    clauses = POLICIES.get(policy, [])  # a policy that was never indexed finds nothing
    words = {w.strip(".,").lower() for w in query.split() if len(w) > 3}
    ranked = sorted(
        clauses, key=lambda c: -len(words & {w.strip(".,").lower() for w in c["text"].split()})
    )
    return ranked[:5]


@flightlog.step(kind="llm", agent="planner", owner="underwriting-ai", model="scripted-llm-1")
def assess_coverage(summary: str, clauses: list[dict[str, str]]) -> dict[str, Any]:
    prompt = (
        "Assess coverage for: "
        + summary
        + "\nPolicy wording:\n"
        + "\n".join(f"[{c['id']}] {c['text']}" for c in clauses)
    )
    answer = scripted_llm(prompt, task="assess")
    tokens_in, tokens_out = answer.pop("tokens")
    flightlog.usage(
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        cost=tokens_in * 2.5e-6 + tokens_out * 1e-5,
        provider="scripted",
    )
    return answer


@flightlog.step(kind="guardrail", agent="validator", owner="risk-team")
def validate_claim(assessment: dict[str, Any]) -> dict[str, Any]:
    cited = assessment.get("cited_clauses") or []
    if not flightlog.check(len(cited) > 0, "cites_policy", "assessment cites no policy clause"):
        raise ClaimRejected("assessment cites no policy clause; refusing to approve")
    return {"approved": bool(assessment.get("covered")), "cited": cited}


@flightlog.step(kind="tool", agent="pricing", owner="pricing-team")
def price_claim(amount: int, policy: str) -> dict[str, Any]:
    excess = {"HOME-STD-2024": 250, "HOME-PLUS-2025": 100, "MOTOR-COMP-2024": 350}.get(policy, 500)
    return {"payout": max(0, amount - excess), "excess": excess}


@flightlog.step(kind="llm", agent="writer", owner="comms-team", model="scripted-llm-1")
def draft_response(summary: str, payout: dict[str, Any]) -> str:
    prompt = f"Your claim is approved: we will pay {payout['payout']}.\nContext: {summary}"
    answer = scripted_llm(prompt, task="write")
    tokens_in, tokens_out = answer["tokens"]
    flightlog.usage(
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        cost=tokens_in * 2.5e-6 + tokens_out * 1e-5,
        provider="scripted",
    )
    return str(answer["text"])


@flightlog.step(kind="tool", agent="notifier", owner="comms-team")
def notify_customer(claim_id: str, letter: str) -> dict[str, Any]:
    return {"sent": True, "channel": "email", "claim_id": claim_id, "chars": len(letter)}


def triage(claim: dict[str, Any]) -> dict[str, Any]:
    """The workflow itself: seven steps, each output feeding the next."""
    with flightlog.run(WORKFLOW, owner="claims-team", input=claim, version="2.3", steps=7) as run:
        intake = intake_claim(claim)
        clauses = search_policy(intake["summary"], intake["policy"])
        assessment = assess_coverage(intake["summary"], clauses)
        verdict = validate_claim(assessment)
        payout = price_claim(intake["amount"], intake["policy"])
        letter = draft_response(intake["summary"], payout)
        receipt = notify_customer(intake["claim_id"], letter)
        result = {
            "claim_id": intake["claim_id"],
            "verdict": verdict,
            "payout": payout,
            "receipt": receipt,
        }
        run.succeed(result)
        return {"run_id": run.id, **result}


def make_claims(n_ok: int = 20, seed: int = 7) -> list[dict[str, Any]]:
    """``n_ok`` ordinary claims and, last, one against a policy that was never indexed."""
    rng = random.Random(seed)
    claims = []
    for i in range(n_ok):
        category, text = INCIDENTS[i % len(INCIDENTS)]
        claims.append(
            {
                "claim_id": f"CLM-{1001 + i}",
                "customer": f"customer-{rng.randint(100, 999)}",
                "category": category,
                "policy": rng.choice(CATEGORY_POLICY[category]),
                "amount": rng.randrange(400, 9000, 50),
                "text": text,
            }
        )
    claims.append(
        {
            "claim_id": f"CLM-{1001 + n_ok}",
            "customer": "customer-417",
            "category": "water",
            # Migrated from the old system; its wording was never indexed.
            "policy": "HOME-LEGACY-1998",
            "amount": 6200,
            "text": "Water came through the kitchen ceiling after a pipe burst upstairs.",
        }
    )
    return claims


DEMO_DIR = "flightlog-demo"
MARKER = ".flightlog-demo"  # names a directory that ``flightlog demo`` made and may reset
# What a re-run of the demo replaces in its own directory (and nothing else).
DEMO_FILES = (
    "flightlog.db",
    "flightlog.db-wal",
    "flightlog.db-shm",
    "flightlog.db-journal",
    "flightlog.db.checkpoints",
    "flightlog.db.ledger-key",
    "flightlog.toml",
    "postmortem-*.html",
    "audit-*.json",
)


@dataclass
class DemoResult:
    url: str
    home: Path = field(default_factory=lambda: Path(DEMO_DIR))
    run_ids: list[str] = field(default_factory=list)
    failed_run_id: str | None = None
    succeeded: int = 0
    failed: int = 0
    store: Store | None = None
    config_path: Path | None = None
    replaced: bool = False  # a previous demo in ``home`` was replaced
    runs_before: int = 0  # runs the store held before the demo (an explicit --db)
    receiver: Any = None
    notes: dict[str, Any] = field(default_factory=dict)
    # How the failed run is printed: ``flightlog demo`` passes ``flightlog show``'s renderer
    # (the CLI is above the demo); without one the demo does not print the run.
    show_run: Callable[[Store, str], list[str]] | None = None

    @property
    def own_store(self) -> bool:
        """True when the store is the demo's own ``home/flightlog.db``."""
        return self.url == own_url(self.home)


def own_url(home: Path) -> str:
    return f"sqlite:///{home / 'flightlog.db'}"


def prepare_home(home: Path, *, reset: bool) -> bool:
    """Make the demo's directory (or refuse one that is not the demo's). With ``reset``, remove
    a previous demo's files from it. Returns whether a previous demo was replaced."""
    from flightlog.errors import ConfigurationError

    marker = home / MARKER
    if home.exists() and not home.is_dir():
        raise ConfigurationError(f"{home} exists and is not a directory; choose another --dir")
    if home.is_dir() and not marker.exists() and any(home.iterdir()):
        raise ConfigurationError(
            f"{home} holds files that flightlog demo did not write; choose another --dir "
            "(the demo writes only into a new or empty directory, or one it made itself)"
        )
    replaced = False
    if reset and marker.exists():
        for pattern in DEMO_FILES:
            for f in home.glob(pattern):
                f.unlink()
                replaced = replaced or f.name == "flightlog.db"
    try:
        home.mkdir(parents=True, exist_ok=True)
        marker.write_text(
            "This directory was written by `flightlog demo`; a re-run replaces the demo's files "
            "in it.\n",
            encoding="utf-8",
        )
    except OSError as exc:
        raise ConfigurationError(f"cannot write the demo's directory {home}: {exc}") from exc
    return replaced


def run_demo(
    url: str | None = None,
    *,
    n_ok: int = 20,
    home: str | Path | None = None,
    config_path: str | Path | None = None,
    show_run: Callable[[Store, str], list[str]] | None = None,
) -> DemoResult:
    """Record the demo's runs; durable when it returns.

    By default into its own store, ``home/flightlog.db`` (``home`` defaults to
    ``./flightlog-demo``; a previous demo there is replaced, so re-runs do not pile up), with
    its own ``home/flightlog.toml``: every owner in the demo's code is a team whose webhook
    goes to a receiver the demo runs on 127.0.0.1 while it records. Recording reads no other
    configuration file, so nothing in the current directory is paged. An explicit ``url`` (a
    store of your own) gets the demo's runs added to it; ``home`` then defaults to the SQLite
    file's directory. ``config_path`` replaces the demo's configuration file. ``show_run(store,
    run_id)`` gives the lines that print the failed run (``flightlog demo`` passes
    ``flightlog show``'s).
    """
    import os

    from flightlog.errors import ConfigurationError
    from flightlog.respond.demo import LocalReceiver, demo_config_text

    if url is not None and url.split("://", 1)[0].lower() in ("http", "https"):
        raise ConfigurationError(
            f"the demo records into a store and then reads it back, so it needs a store URL "
            f"(sqlite:///file.db or postgresql://...), not the server {url}; run it against the "
            "server's own --db, or record with flightlog.configure(url) in your application"
        )
    home = Path(home if home is not None else DEMO_DIR)
    own = url is None or url == own_url(home)
    replaced = prepare_home(home, reset=own)
    url = url or own_url(home)
    result = DemoResult(url=url, home=home, replaced=replaced, show_run=show_run)
    if not own:
        before = flightlog.open_store(url)
        try:
            result.runs_before = before.count_runs()
        finally:
            before.close()
    if config_path is None:
        result.receiver = LocalReceiver()
        config_path = home / "flightlog.toml"
        Path(config_path).write_text(demo_config_text(result.receiver.port), encoding="utf-8")
    result.config_path = Path(config_path)
    # Run-end processing (detection, the response engine) reads $FLIGHTLOG_CONFIG: point it at
    # the demo's own file while recording, never at a flightlog.toml in the current directory.
    saved = os.environ.get("FLIGHTLOG_CONFIG")
    os.environ["FLIGHTLOG_CONFIG"] = str(result.config_path)
    import time

    started_ns = time.time_ns()
    try:
        flightlog.configure(url, service="claims-triage-demo")
        for claim in make_claims(n_ok):
            try:
                out = triage(claim)
                result.run_ids.append(out["run_id"])
                result.succeeded += 1
            except ClaimRejected:
                result.failed += 1
        flightlog.flush()
    finally:
        if saved is None:
            os.environ.pop("FLIGHTLOG_CONFIG", None)
        else:
            os.environ["FLIGHTLOG_CONFIG"] = saved
    store = flightlog.open_store(url)
    result.store = store
    from flightlog.store import RunQuery

    failed = store.list_runs(
        RunQuery(workflow=WORKFLOW, status="failed", since_ns=started_ns, limit=1)
    )
    if failed:
        result.failed_run_id = failed[0].id
        result.run_ids.append(failed[0].id)
    return result


def finish(result: DemoResult) -> None:
    """Stop recording, stop the receiver and close the store; SQLite's write-ahead log is
    checkpointed into the database file, so the store is one file to copy."""
    flightlog.shutdown()
    if result.receiver is not None:
        result.receiver.close()
        result.receiver = None
    if result.store is not None:
        checkpoint = getattr(result.store, "checkpoint", None)
        if checkpoint is not None:
            checkpoint()
        result.store.close()


# -- what `flightlog demo` prints ------------------------------------------------------------
Section = Callable[[DemoResult, Callable[[str], None]], None]
SECTIONS: list[Section] = []


def section(fn: Section) -> Section:
    """Register a printed section of the demo (in registration order)."""
    SECTIONS.append(fn)
    return fn


@section
def _recorded(result: DemoResult, echo: Callable[[str], None]) -> None:
    n = result.succeeded + result.failed
    counts = f"{n} runs of '{WORKFLOW}' ({result.succeeded} succeeded, {result.failed} failed)"
    if result.own_store:
        what = "Replaced the previous demo: recorded" if result.replaced else "Recorded"
        echo(
            f"{what} {counts} into its own store {result.home / 'flightlog.db'}, "
            f"with its own configuration {result.config_path} (a re-run replaces both)"
        )
    else:
        echo(
            f"Added {counts} to {result.url} (it held {result.runs_before} runs before, "
            f"now {result.runs_before + n})"
        )


@section
def _failure(result: DemoResult, echo: Callable[[str], None]) -> None:
    if not result.failed_run_id or result.show_run is None:
        return
    echo("")
    echo("The failed run:")
    for line in result.show_run(_open(result), result.failed_run_id):
        echo("  " + line)


def _open(result: DemoResult) -> Store:
    """The demo's store, open while its sections run."""
    if result.store is None:
        raise RuntimeError("the demo's store is not open")
    return result.store


def report_path(result: DemoResult) -> Path:
    """Where the demo writes its postmortem: in its directory."""
    rid = (result.failed_run_id or "run")[:12]
    return (result.home / f"postmortem-{rid}.html").resolve()


@section
def _attribution(result: DemoResult, echo: Callable[[str], None]) -> None:
    if not result.failed_run_id:
        return
    from flightlog.forensics import why
    from flightlog.forensics.report import postmortem, render_html

    att = why(_open(result), result.failed_run_id)
    result.notes["attribution"] = att
    echo("")
    echo("Why it failed:")
    echo("  " + att.summary)
    if att.chain:
        echo(
            "  chain: "
            + " -> ".join(f"{s.index} {s.name}" for s in att.chain)
            + f"   confidence {att.confidence:.2f} ({att.method})"
        )
    path = report_path(result)
    path.write_text(render_html(postmortem(_open(result), result.failed_run_id)), encoding="utf-8")
    result.notes["report"] = str(path)
    echo(f"  Postmortem (HTML): {path}")


@section
def _audit(result: DemoResult, echo: Callable[[str], None]) -> None:
    """The audit ledger: verify the store's log, export an auditor bundle of the failure."""
    from flightlog.ledger import attach, ledger_enabled

    if not ledger_enabled() or not result.failed_run_id:
        return
    from flightlog.ledger.bundle import export
    from flightlog.ledger.verify import verify

    ledger = attach(_open(result))
    rid = result.failed_run_id[:12]
    bundle = (result.home / f"audit-{rid}.json").resolve()
    summary = export(ledger, bundle, run_id=result.failed_run_id)  # signs a checkpoint
    report = verify(ledger)
    result.notes["audit_bundle"] = str(bundle)
    result.notes["audit_key"] = ledger.verifier().encode()
    echo("")
    echo("Audit trail (every record is a leaf of a signed Merkle log):")
    echo(f"  verified: {report.summary()}")
    echo(
        f"  Auditor bundle of the failed run ({summary.entries} entries, checkpoint size "
        f"{summary.checkpoint_size}): {bundle}"
    )


@section
def _alerting(result: DemoResult, echo: Callable[[str], None]) -> None:
    """Who is paged for the failure: the response engine, delivering to a local webhook."""
    from flightlog.respond.demo import alerting_section

    alerting_section(result, echo)


def explore_commands(result: DemoResult) -> list[tuple[str, str]]:
    """The shell commands the demo suggests, in order, each with a comment. Every one of them
    works as printed, in the shell that ran the demo (a test runs them)."""
    import shlex

    from flightlog.ledger import ledger_enabled

    cmds: list[tuple[str, str]] = []
    activate = _activation_hint()
    if activate:
        cmds.append((activate, "`flightlog` is not on your PATH yet: this puts it there"))
    if result.own_store:
        cmds.append(
            (
                f"cd {shlex.quote(str(result.home))}",
                "the demo's store (flightlog.db) and configuration (flightlog.toml)",
            )
        )
        db = cfg = ""
        bundle_dir = ""
    else:
        db = f" --db {shlex.quote(result.url)}"
        cfg = f" --config {shlex.quote(str(result.config_path))}"
        bundle_dir = str(result.home.resolve()) + "/"
    rid = (result.failed_run_id or "RUN")[:12]
    cmds += [
        (f"flightlog runs{db}", "every run, newest first"),
        (f"flightlog show {rid}{db}", "the failed run: step tree, lineage, findings"),
        (f"flightlog why {rid}{db}", "root cause, evidence, confidence"),
        (f"flightlog report {rid} --format md{db}", "the blameless postmortem"),
        (f"flightlog incidents{db}", "the incident the failure opened"),
        (f"flightlog alerts{db}", "who was notified, and how delivery went"),
        (
            # With the owner the step declares in code, as the engine asks: the answer
            # is the team that was paged (the rules alone would name claims-team).
            f"flightlog owners explain --workflow {WORKFLOW} --step search_policy "
            f"--owner search-team{cfg}",
            "why search-team was paged: an owner= in code comes before the rules",
        ),
    ]
    if ledger_enabled() and result.failed_run_id:
        cmds.append((f"flightlog audit verify{db}", "recompute the whole audit log"))
        bundle = shlex.quote(f"{bundle_dir}audit-{rid}.json")
        key = result.notes.get("audit_key")
        if key:
            cmds.append(
                (f"flightlog audit verify-bundle {bundle} --key {key}", "what an auditor runs")
            )
    if _server_installed():
        cmds.append((f"flightlog serve{db}", "the web UI on http://127.0.0.1:4318/ (Ctrl-C stops)"))
    return cmds


def _activation_hint() -> str | None:
    """``. .venv/bin/activate`` when the ``flightlog`` on PATH is not this one (or none is)."""
    import contextlib
    import os
    import shlex
    import shutil
    import sys

    bindir = Path(sys.executable).parent
    script = bindir / "flightlog"
    if not script.exists():
        return None
    found = shutil.which("flightlog")
    if found and Path(found).parent.absolute() == bindir.absolute():
        return None
    activate = bindir / "activate"
    if not activate.exists():
        return f'export PATH={shlex.quote(str(bindir.absolute()))}:"$PATH"'
    shown = str(activate.absolute())
    with contextlib.suppress(ValueError):
        rel = os.path.relpath(shown)
        if not rel.startswith(".."):
            shown = rel
    return f". {shlex.quote(shown)}"


def _server_installed() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("starlette", "uvicorn"))


@section
def _explore(result: DemoResult, echo: Callable[[str], None]) -> None:
    cmds = explore_commands(result)
    width = max((len(c) for c, _ in cmds if len(c) <= 44), default=0)
    echo("")
    echo("Explore it, in this shell:")
    for cmd, note in cmds:
        echo(f"  {cmd:<{width}}  # {note}" if len(cmd) <= width else f"  {cmd}")
