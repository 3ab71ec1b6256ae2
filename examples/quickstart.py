"""A minimal agent recorded by Flightlog: a retrieval tool, an LLM step, a check.

Runs offline: the "LLM" is a stand-in that answers from the clauses it is given. Put your
own model call where it says so. Run it with `python examples/quickstart.py`; it records
two runs into $FLIGHTLOG_URL, else ./flightlog.db, one of which fails, and asks why from
that store (with $FLIGHTLOG_URL a server, http://..., flightlog.why() asks the server, with
$FLIGHTLOG_API_KEY when the server has keys: a read or admin key of the project).
"""

import flightlog

POLICY = {
    "water": ["HS-4.1 Sudden escape of water from a fixed installation is covered."],
    "theft": ["HS-2.5 Theft following forcible entry is covered up to 20000."],
}


@flightlog.step(kind="tool", agent="retriever", owner="search-team")
def search_policy(query: str) -> list[str]:
    return [clause for topic, clauses in POLICY.items() if topic in query for clause in clauses]


@flightlog.step(kind="llm", agent="planner", owner="underwriting-ai", model="stand-in-1")
def assess(claim: str, clauses: list[str]) -> dict:
    # Call your model here, e.g. reply = client.chat.completions.create(...)
    flightlog.usage(input_tokens=40 + 10 * len(clauses), output_tokens=12, cost=0.0001)
    return {"covered": bool(clauses), "cited": [c.split()[0] for c in clauses]}


def triage(claim: dict) -> str:
    with flightlog.run("claims-triage", owner="claims-team", input=claim, steps=2) as run:
        clauses = search_policy(claim["text"])
        flightlog.check(len(clauses) > 0, "has_docs", "retrieval returned no documents")
        decision = assess(claim["text"], clauses)  # lineage: search_policy -> assess
        if decision["covered"]:
            run.succeed(decision)  # or return normally: the run succeeds
        else:
            run.fail("not covered: no policy clause to cite")  # an exception fails it too
        return run.id


if __name__ == "__main__":  # not on import: `flightlog replay --entry` imports this file
    flightlog.configure()  # $FLIGHTLOG_URL, else sqlite:///flightlog.db (created if missing)
    ok = triage({"claim": "CLM-1", "text": "water came through the kitchen ceiling"})
    bad = triage({"claim": "CLM-2", "text": "a storm blew tiles off the roof"})
    flightlog.flush()  # durable when it returns
    print(f"recorded run {ok[:12]} (succeeded) and run {bad[:12]} (failed)")
    print(flightlog.why(bad).summary)
