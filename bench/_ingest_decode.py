"""CPU per span of the server's OTLP request path, in-process, on the ingestion bench's spans.

    python bench/_ingest_decode.py [--traces 1000] [--rounds 8] [--against OTHER/src] [--json]
                                   [--instructions]

The request path is what ``POST /v1/traces`` does with a body before the spans are queued for
the writer: ``parse_request`` (protobuf), ``screen_times`` and ``split``, ``decode_parsed``
(``otel.decode.request_to_batch`` and the 64-bit range check) and the default scrubber
(``privacy.Scrubber.batch``). The bodies are the bench's requests of 512 spans, encoded by the
exporter's encoder (with ``--json``, the same requests as OTLP/JSON, hex ids, as the
OpenTelemetry JavaScript exporters send them). CPU is ``time.thread_time``, per span, the
median over ``--rounds``. With ``--instructions``, the thread's user-space instructions per
span instead (a hardware counter through Linux's ``perf_event_open``: nearly independent of
the machine's load, so two trees can be compared on a busy machine; needs
``/proc/sys/kernel/perf_event_paranoid`` at 2 or less).

With ``--against``, the same is measured for ``otel/decode.py``, ``server/screen.py`` and
``privacy/scrub.py`` of another source tree (say a checkout of main before a change), loaded
under other names in this process, alternating with this tree round by round so both see the
same machine load. Only those three files: the other tree's runs with this tree's detectors,
status module and OTLP/JSON parser, so when those differ too, run each tree whole instead
(``PYTHONPATH=OTHER/src python bench/_ingest_decode.py``, alternating by hand).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _ingest_spans import batches, build_spans  # noqa: E402

PARTS = ("parse", "screen", "decode", "scrub")
# A fixed service.instance.id (the SDK's is random: see build_spans), with no seven digits in
# one run, as most: the same text scrubbed in every process, so runs compare.
INSTANCE_ID = "4f2b9c1e-a3d8-4e6f-b5c2-d9e1f8a7b3c4"


class Instructions:
    """The calling thread's user-space instructions retired (``perf_event_open``)."""

    def __init__(self) -> None:
        import ctypes
        import os
        import struct

        attr = bytearray(128)  # struct perf_event_attr (PERF_ATTR_SIZE_VER7)
        struct.pack_into("IIQ", attr, 0, 0, 128, 1)  # PERF_TYPE_HARDWARE, INSTRUCTIONS
        struct.pack_into("Q", attr, 40, (1 << 5) | (1 << 6))  # exclude_kernel, exclude_hv
        libc = ctypes.CDLL(None, use_errno=True)
        buf = ctypes.create_string_buffer(bytes(attr), len(attr))
        fd = libc.syscall(298, buf, 0, -1, -1, 0)  # x86-64 perf_event_open(this thread)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "perf_event_open (instructions counter)")
        self._fd, self._read, self._unpack = fd, os.read, struct.unpack

    def __call__(self) -> float:
        return float(self._unpack("Q", self._read(self._fd, 8))[0])


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class RequestPath:
    """One tree's request path: its decode, screen and scrub modules."""

    def __init__(
        self,
        decode: Any,
        screen: Any,
        scrub: Any,
        config: Any,
        ctype: str,
        clock: Any = time.thread_time,
    ) -> None:
        self.decode, self.screen, self.ctype, self.clock = decode, screen, ctype, clock
        self.scrubber = scrub.Scrubber(config)

    def run(self, bodies: list[bytes], out: dict[str, float]) -> None:
        clock = self.clock
        for body in bodies:
            c0 = clock()
            req = self.decode.parse_request(body, self.ctype)
            c1 = clock()
            self.screen.screen_times(req)
            pieces = self.screen.split(req, 2000)
            c2 = clock()
            results = [self.screen.decode_parsed(p) for p in pieces]
            c3 = clock()
            for r in results:
                self.scrubber.batch(r.batch)
            c4 = clock()
            for part, t in zip(PARTS, (c1 - c0, c2 - c1, c3 - c2, c4 - c3), strict=True):
                out[part] += t


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--traces", type=int, default=1000, help="traces of 4 spans (default 1000)")
    p.add_argument("--rounds", type=int, default=8, help="measured rounds (default 8)")
    p.add_argument("--against", help="another tree's src directory, measured alternately")
    p.add_argument("--json", action="store_true", help="send the requests as OTLP/JSON")
    p.add_argument(
        "--instructions",
        action="store_true",
        help="count user-space instructions per span (perf_event_open) instead of CPU time",
    )
    args = p.parse_args(argv)
    clock: Any = Instructions() if args.instructions else time.thread_time
    unit, scale = ("instructions", 1.0) if args.instructions else ("CPU µs", 1e6)
    ctype = "application/json" if args.json else "application/x-protobuf"

    from flightlog import privacy
    from flightlog.otel import decode
    from flightlog.server import screen

    scrub = importlib.import_module("flightlog.privacy.scrub")
    config = privacy.load({}).config
    paths = {"this tree": RequestPath(decode, screen, scrub, config, ctype, clock)}
    if args.against:
        src = Path(args.against).resolve() / "flightlog"
        other_decode = _load("_against_decode", src / "otel" / "decode.py")
        other_screen = _load("_against_screen", src / "server" / "screen.py")
        other_scrub = _load("_against_scrub", src / "privacy" / "scrub.py")
        paths[f"against {args.against}"] = RequestPath(
            other_decode, other_screen, other_scrub, config, ctype, clock
        )
        _patch_screen(other_screen, other_decode)

    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    spans = build_spans(args.traces, instance_id=INSTANCE_ID)
    requests = [encode_spans(b) for b in batches(spans, 512)]
    bodies = [_otlp_json(r) if args.json else r.SerializePartialToString() for r in requests]
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
    names = list(paths)
    for k in range(args.rounds + 1):
        for name in names if k % 2 == 0 else names[::-1]:
            out = dict.fromkeys(PARTS, 0.0)
            paths[name].run(bodies, out)
            if k:  # the first round warms up
                rounds[name].append({part: v * scale / len(spans) for part, v in out.items()})
    print(f"request path, {unit}/span (median of {args.rounds} rounds, {len(spans):,} spans)")
    for name, rs in rounds.items():
        med = {part: statistics.median(r[part] for r in rs) for part in PARTS}
        total = statistics.median(sum(r.values()) for r in rs)
        parts = ", ".join(f"{part} {v:.1f}" for part, v in med.items())
        print(f"  {name}: {total:.1f} ({parts})")
    return 0


def _otlp_json(req: Any) -> bytes:
    """A request as OTLP/JSON: protobuf JSON with the ids in hex, not base64."""
    import base64

    import orjson
    from google.protobuf.json_format import MessageToDict

    doc = MessageToDict(req)
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for item in (span, *span.get("links", [])):
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in item:
                            item[key] = base64.b64decode(item[key]).hex()
    return orjson.dumps(doc)


def _patch_screen(screen: Any, decode: Any) -> None:
    """The other tree's ``decode_parsed`` imports ``request_to_batch`` from
    ``flightlog.otel.decode`` when called: point it at that tree's decoder instead."""
    original = screen.decode_parsed

    def decode_parsed(req: Any) -> Any:
        real = sys.modules["flightlog.otel.decode"]
        sys.modules["flightlog.otel.decode"] = decode
        try:
            return original(req)
        finally:
            sys.modules["flightlog.otel.decode"] = real

    screen.decode_parsed = decode_parsed


if __name__ == "__main__":
    sys.exit(main())
