"""The demo: an insurance-claim triage workflow of seven steps across six agents.

Offline and deterministic: the two LLM steps are answered by a scripted stand-in. Twenty
claims go through cleanly; the twenty-first cites a legacy policy that the retriever has not
indexed, so ``search_policy`` (step 2) returns nothing, the planner LLM answers without a
clause to cite, and the validator rejects the assessment at step 4 of 7: the failure
surfaces two steps after its cause.

``run_demo(url)`` records the runs and returns a ``DemoResult``; ``SECTIONS`` are the
printed parts of ``flightlog demo``, in order. Later capabilities append their own section
(attribution, alerting, audit) with ``section``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import flightlog

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


@dataclass
class DemoResult:
    url: str
    run_ids: list[str] = field(default_factory=list)
    failed_run_id: str | None = None
    succeeded: int = 0
    failed: int = 0
    store: Any = None
    notes: dict[str, Any] = field(default_factory=dict)


def run_demo(url: str, *, n_ok: int = 20) -> DemoResult:
    """Record the demo's runs into the store at ``url``; durable when it returns."""
    if url.split("://", 1)[0].lower() in ("http", "https"):
        from flightlog.errors import ConfigurationError

        raise ConfigurationError(
            f"the demo records into a store and then reads it back, so it needs a store URL "
            f"(sqlite:///file.db or postgresql://...), not the server {url}; run it against the "
            "server's own --db, or record with flightlog.configure(url) in your application"
        )
    flightlog.configure(url, service="claims-triage-demo")
    result = DemoResult(url=url)
    for claim in make_claims(n_ok):
        try:
            out = triage(claim)
            result.run_ids.append(out["run_id"])
            result.succeeded += 1
        except ClaimRejected:
            run = flightlog.current_run()
            result.failed += 1
            del run
    flightlog.flush()
    store = flightlog.open_store(url)
    result.store = store
    from flightlog.store import RunQuery

    failed = store.list_runs(RunQuery(workflow=WORKFLOW, status="failed", limit=1))
    if failed:
        result.failed_run_id = failed[0].id
        result.run_ids.append(failed[0].id)
    return result


# -- what `flightlog demo` prints ------------------------------------------------------------
Section = Callable[[DemoResult, Callable[[str], None]], None]
SECTIONS: list[Section] = []


def section(fn: Section) -> Section:
    """Register a printed section of the demo (in registration order)."""
    SECTIONS.append(fn)
    return fn


@section
def _recorded(result: DemoResult, echo: Callable[[str], None]) -> None:
    echo(
        f"Recorded {result.succeeded + result.failed} runs of '{WORKFLOW}' "
        f"({result.succeeded} succeeded, {result.failed} failed) into {result.url}"
    )


@section
def _failure(result: DemoResult, echo: Callable[[str], None]) -> None:
    if not result.failed_run_id:
        return
    from flightlog.cli.runs import render_run

    echo("")
    echo("The failed run:")
    for line in render_run(result.store, result.failed_run_id):
        echo("  " + line)


def report_path(result: DemoResult) -> str:
    """Where the demo writes its postmortem: next to the SQLite file, else here."""
    from pathlib import Path

    rid = (result.failed_run_id or "run")[:12]
    if result.url.startswith("sqlite:///"):
        return str(
            Path(result.url[len("sqlite:///") :]).resolve().with_name(f"postmortem-{rid}.html")
        )
    return str(Path(f"postmortem-{rid}.html").resolve())


@section
def _attribution(result: DemoResult, echo: Callable[[str], None]) -> None:
    if not result.failed_run_id:
        return
    from pathlib import Path

    from flightlog.forensics import why
    from flightlog.forensics.report import postmortem, render_html

    att = why(result.store, result.failed_run_id)
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
    Path(path).write_text(
        render_html(postmortem(result.store, result.failed_run_id)), encoding="utf-8"
    )
    result.notes["report"] = path
    echo(f"  Postmortem (HTML): {path}")
    db = f" --db {result.url}" if result.url != "sqlite:///flightlog.db" else ""
    echo(f"  flightlog why {result.failed_run_id[:12]}{db}")
    echo(f"  flightlog report {result.failed_run_id[:12]} --format md{db}")


@section
def _audit(result: DemoResult, echo: Callable[[str], None]) -> None:
    """The audit ledger: verify the store's log, export an auditor bundle of the failure."""
    from pathlib import Path

    from flightlog.ledger import attach, ledger_enabled

    if not ledger_enabled() or not result.failed_run_id:
        return
    from flightlog.ledger.bundle import export
    from flightlog.ledger.verify import verify

    ledger = attach(result.store)
    rid = result.failed_run_id[:12]
    if result.url.startswith("sqlite:///"):
        bundle = Path(result.url[len("sqlite:///") :]).resolve().with_name(f"audit-{rid}.json")
    else:
        bundle = Path(f"audit-{rid}.json").resolve()
    summary = export(ledger, bundle, run_id=result.failed_run_id)  # signs a checkpoint
    report = verify(ledger)
    result.notes["audit_bundle"] = str(bundle)
    db = f" --db {result.url}" if result.url != "sqlite:///flightlog.db" else ""
    echo("")
    echo("Audit trail (every record is a leaf of a signed Merkle log):")
    echo(f"  flightlog audit verify{db}: {report.summary()}")
    echo(
        f"  Auditor bundle of the failed run ({summary.entries} entries, checkpoint size "
        f"{summary.checkpoint_size}): {bundle}"
    )
    echo(f"  flightlog audit verify-bundle {bundle} --key {ledger.verifier().encode()}")


@section
def _explore(result: DemoResult, echo: Callable[[str], None]) -> None:
    db = f" --db {result.url}" if result.url != "sqlite:///flightlog.db" else ""
    rid = (result.failed_run_id or "RUN")[:12]
    echo("")
    echo("Explore:")
    echo(f"  flightlog runs{db}                     # every run")
    echo(f"  flightlog runs --status failed --json{db}")
    echo(f"  flightlog show {rid}{db}        # the step tree, lineage and findings")


@section
def _alerting(result: DemoResult, echo: Callable[[str], None]) -> None:
    """Who is paged for the failure: the response engine, delivering to a local webhook."""
    from flightlog.respond.demo import alerting_section

    alerting_section(result.store, result.failed_run_id, echo)
