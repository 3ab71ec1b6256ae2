"""Cost of scrubbing at capture, per step record, without any storage in the way.

Builds batches as the SDK writer hands them to its sink (a step with an input and an output
payload and four attributes, a run, a finding every tenth step) and times
``flightlog.privacy.scrub`` over them: records with nothing to scrub (the common case, decided
by one screening regex per text) and records with an e-mail address, an API key, a card
number and a bearer token in their inputs, outputs, attributes and error messages.
Run: ``python bench/privacy.py [--steps 20000] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import orjson

from flightlog.model import Batch, ErrorInfo, Finding, Run, Step
from flightlog.payload import make_payload
from flightlog.privacy import load, scrub


def make_batch(n: int, secrets: bool) -> Batch:
    mail = "alice@example.com" if secrets else "customer-17"
    key = "sk-proj-Zq8Xw7Vt6Us5Rr4Qp3Oo2Nn1Mm0" if secrets else "policy-7"
    card = "4111 1111 1111 1111" if secrets else "order 1234"
    b = Batch(runs=[Run("a" * 32, "claims-triage", 1)])
    for i in range(n):
        inp = make_payload(
            orjson.dumps(
                {"query": f"water damage claim {i}", "user": mail, "k": i},
                option=orjson.OPT_SORT_KEYS,
            )
        )
        out = make_payload(
            orjson.dumps(
                [f"Policy {i}: burst pipes are covered", f"ref {key}", card],
            )
        )
        b.payloads += [inp, out]
        b.steps.append(
            Step(
                "a" * 32,
                f"{i:016x}",
                "search_policy",
                "tool",
                i + 1,
                i,
                input_hash=inp.hash,
                output_hash=out.hash,
                error=ErrorInfo("ValueError", f"no match for {mail}") if i % 10 == 0 else None,
                attributes={
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.usage.input_tokens": 120,
                    "http.url": f"https://api.example.com/v1/search?q={i}",
                    ("http.request.header.authorization" if secrets else "http.method"): (
                        f"Bearer {key}" if secrets else "GET"
                    ),
                },
            )
        )
        if i % 10 == 0:
            b.findings.append(Finding(f"f{i}", "a" * 32, "check", "error", f"no docs for {mail}"))
    return b


def writer_cost(n: int, secrets: bool, scrubber: object | None) -> float:
    """Seconds per step the SDK writer spends turning finished steps into a batch (payload
    hashing, lineage) and, with ``scrubber``, scrubbing it: the writer's CPU work before the
    store, for the step of ``bench/sdk_overhead.py``."""
    from flightlog.payload import encode_value
    from flightlog.sdk.processing import BatchBuilder
    from flightlog.sdk.records import StepDone

    builder = BatchBuilder()  # hashing and lineage alone; the scrub is timed with it below
    user = "alice@example.com" if secrets else "customer-17"
    records = [
        StepDone(
            Step("a" * 32, f"{i:016x}", "search_policy", "tool", i + 1, i, ended_ns=i + 1),
            encode_value({"query": "water damage claim", "k": i, "user": user}),
            encode_value(i),
        )
        for i in range(n)
    ]
    t0 = time.perf_counter()
    for i in range(0, n, 1000):
        batch = builder.process(list(records[i : i + 1000])).batch
        if scrubber is not None:
            scrub(batch, scrubber)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - t0
    return elapsed / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    scrubber = load({})
    us = 1e6
    print(f"steps per trial: {args.steps}, trials: {args.repeat} (medians)")
    for secrets in (False, True):
        template = make_batch(args.steps, secrets)
        times = []
        for _ in range(args.repeat):
            b = copy.deepcopy(template)
            t0 = time.perf_counter()
            scrub(b, scrubber)
            times.append((time.perf_counter() - t0) / args.steps)
        label = "with secrets in every record" if secrets else "nothing to scrub"
        print(f"scrub, {label:30}{statistics.median(times) * us:8.2f} µs/step")
    print(f"values scrubbed, by rule: {dict(scrubber.counts)}")
    print("SDK writer, the step of bench/sdk_overhead.py (build the batch, then scrub it):")
    for secrets in (False, True):
        off, on = [], []
        for _ in range(args.repeat):
            off.append(writer_cost(args.steps, secrets, None))
            on.append(writer_cost(args.steps, secrets, load({})))
        a, b = statistics.median(off) * us, statistics.median(on) * us
        label = "an e-mail in every input" if secrets else "nothing to scrub"
        print(f"  {label:26} privacy off {a:6.2f} µs/step, on {b:6.2f} µs/step ({b / a:.2f}x)")


if __name__ == "__main__":
    main()
