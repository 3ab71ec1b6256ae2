"""Instructions the default scrubber spends per span of the ingestion bench, without a
hardware counter (for machines where ``_ingest_decode.py --instructions`` cannot open
``perf_event_open``): run it twice under cachegrind, with and without the scrub, and take
the difference.

    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \\
        python bench/_scrub_instructions.py scrub|copy [--traces 200] [--rounds 3] [--json]

Both modes decode the bench's requests once and deep-copy the batches ``--rounds`` times
(the first round warms the scrubber's caches, as a running server's are); ``scrub`` then
scrubs each copy. (I refs of ``scrub`` - I refs of ``copy``) / (spans x rounds) is the
scrubber's instructions per span.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _ingest_decode import INSTANCE_ID, _otlp_json  # noqa: E402
from _ingest_spans import batches, build_spans  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=("scrub", "copy"))
    p.add_argument("--traces", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from flightlog import privacy
    from flightlog.otel import decode
    from flightlog.server import screen

    ctype = "application/json" if args.json else "application/x-protobuf"
    spans = build_spans(args.traces, instance_id=INSTANCE_ID)
    requests = [encode_spans(b) for b in batches(spans, 512)]
    bodies = [_otlp_json(r) if args.json else r.SerializePartialToString() for r in requests]
    decoded = []
    for body in bodies:
        req = decode.parse_request(body, ctype)
        screen.screen_times(req)
        decoded += [screen.decode_parsed(piece).batch for piece in screen.split(req, 2000)]
    scrubber = privacy.load({})
    for _ in range(args.rounds):
        for b in copy.deepcopy(decoded):
            if args.mode == "scrub":
                scrubber.batch(b)
    print(f"{len(spans)} spans x {args.rounds} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
