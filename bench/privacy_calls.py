"""Per-call CPU cost of the scrubber on typical inputs: prose, JSON texts (tool arguments,
invocation parameters holding the key word "max_tokens", one with a secret key), a mapping of
span attributes holding two JSON texts, a payload of messages with a tool call's JSON
arguments. CPU time of this process (``time.process_time``), best of 5 rounds of N calls,
caches warm (as in steady state). Run old and new alternately in one session:
``PYTHONPATH=src python bench/privacy_calls.py 3000``.
"""

import hashlib
import json
import sys
import time

import orjson

from flightlog.model import Payload
from flightlog.privacy import load

s = load({})
prose = (
    "The claim concerns water damage from a burst pipe in the kitchen; the policy covers "
    "sudden and accidental discharge, so the adjuster should approve the repair estimate "
    "of 1,250 EUR and close the ticket within five working days. "
) * 2
args_json = json.dumps(
    {
        "query": "water damage claim 17 kitchen burst pipe coverage",
        "max_results": 5,
        "filters": {"region": "EU", "product": "home-plus"},
    }
)
tokens_json = json.dumps(
    {
        "model": "gpt-4o",
        "max_tokens": 512,
        "temperature": 0.2,
        "messages": [
            {"role": "user", "content": "Summarise the policy for claim 17 in two sentences."}
        ],
    }
)
secret_json = json.dumps({"query": "x", "credential": "opaque-value-123", "n": 3})
attrs = {
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.usage.input_tokens": 120,
    "gen_ai.operation.name": "execute_tool",
    "tool.arguments": args_json,
    "llm.invocation_parameters": tokens_json,
}
data = orjson.dumps(
    {
        "messages": [
            {"role": "user", "content": prose},
            {
                "role": "assistant",
                "tool_calls": [{"function": {"name": "search", "arguments": args_json}}],
            },
        ]
    },
    option=orjson.OPT_SORT_KEYS,
)
p = Payload(hashlib.sha256(data).hexdigest(), data, len(data))
cases = {
    "text: prose, no JSON (300 chars)": lambda: s.text(prose),
    "text: JSON tool args, no key word": lambda: s.text(args_json),
    "text: JSON with 'max_tokens' (key word, no secret)": lambda: s.text(tokens_json),
    "text: JSON with a secret key": lambda: s.text(secret_json),
    "mapping: 5 attributes, two JSON texts": lambda: s.mapping(attrs),
    "payload: messages with tool-call JSON args": lambda: s.payload(p),
}
N = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
for name, fn in cases.items():
    best = 1e9
    for _ in range(5):
        s._clean.clear()
        s._screened.clear()
        s._part_hits.clear()
        t = time.process_time()
        for _ in range(N):
            fn()
        best = min(best, (time.process_time() - t) / N)
    print(f"{name}\t{best * 1e6:.2f}")
