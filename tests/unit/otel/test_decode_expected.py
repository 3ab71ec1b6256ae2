"""Every recorded framework fixture (tests/data/otlp) decodes to exactly the records stored in
``tests/data/otlp/decoded.json``: the server's request path (``decode_request`` and the
default scrubber, OTLP/JSON and the same request as protobuf), the whole-request path with
data edges (``decode``), all of a framework's scenarios in one request, and the edges and
statuses that ``derive`` adds when the spans arrive one per request into a real SQLite store.

The expectation was written by the decoder before its speed-up, so a faster decoder must give
the same runs, steps, edges, payloads and findings. It holds a SHA-256 of each part's canonical
JSON (the records themselves are megabytes); a mismatch names the fixture, the path and the
part. After an intended change of the mapping, rewrite it with
``PYTHONPATH=src:. python tests/unit/otel/test_decode_expected.py --write``, and compare the
records before and after (``--dump FILE`` writes them in full).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "tests" / "data" / "otlp"
EXPECTED = DATA / "decoded.json"


def _fixtures() -> list[Path]:
    return sorted(DATA.glob("*/*.json"))


def _records(result: Any) -> dict[str, Any]:
    b = result.batch
    return {
        "accepted": result.accepted_spans,
        "rejected": result.rejected_spans,
        "errors": result.errors,
        "placeholder_runs": sorted(result.placeholder_runs),
        "ended_runs": result.ended_runs,
        "inferred_runs": sorted(result.inferred_runs),
        "runs": [r.to_dict() for r in b.runs],
        "steps": [s.to_dict() for s in b.steps],
        "edges": [e.to_dict() for e in b.edges],  # in order: the ledger logs them so
        "findings": [f.to_dict() for f in b.findings],
        "payloads": [[p.hash, p.size, p.truncated, len(p.data)] for p in b.payloads],
    }


def _server_path(body: bytes, ctype: str) -> dict[str, Any]:
    from flightlog import privacy
    from flightlog.server.screen import decode_request

    result = decode_request(body, ctype)
    privacy.scrub(result.batch, privacy.load({}))
    return _records(result)


def _as_protobuf(body: bytes) -> bytes:
    from flightlog.otel.decode import parse_request

    return bytes(parse_request(body, "application/json").SerializeToString())


def _merged(paths: list[Path]) -> bytes:
    """All of ``paths``' resource spans in one OTLP/JSON request."""
    doc: dict[str, Any] = {"resourceSpans": []}
    for p in paths:
        doc["resourceSpans"] += json.loads(p.read_bytes()).get("resourceSpans", [])
    return json.dumps(doc).encode()


def _one_span_per_request(body: bytes, tmp: Path) -> dict[str, Any]:
    """The request's spans sent one per request (last span first) through the real
    ingestion queue into SQLite: the runs and edges stored."""
    from flightlog.app import open_store
    from flightlog.otel.decode import parse_request
    from flightlog.server.ingest import Ingestor
    from flightlog.server.screen import _single, _spans, decode_parsed

    req = parse_request(body, "application/json")
    store = open_store(f"sqlite:///{tmp / 'one.db'}")
    ingestor = Ingestor(store)
    try:
        for rs, ss, span, _ in reversed(_spans(req)):
            ingestor.submit(decode_parsed(_single(rs, ss, span))).result(timeout=60)
    finally:
        ingestor.close()
    out: dict[str, Any] = {}
    for run in sorted(store.list_runs(), key=lambda r: r.id):
        out[run.id] = {
            "status": run.status,
            "failed_step_id": run.failed_step_id,
            "reason": run.reason,
            "edges": sorted(
                [e.source, e.target, e.kind, e.evidence, e.detail or ""]
                for e in store.get_edges(run.id)
            ),
        }
    store.close()
    return out


# Scenarios also sent one span per request (a store write each: a few, to stay fast): a
# success with lineage, a failure and a swallowed error.
ONE_SPAN_PER_REQUEST = ("ok_1", "raises", "swallowed")


def _unordered_edges(records: dict[str, Any]) -> dict[str, Any]:
    """``decode`` infers edges run by run in set order: their order is not pinned."""
    records["edges"] = sorted(records["edges"], key=lambda e: json.dumps(e, sort_keys=True))
    return records


def compute(tmp: Path) -> dict[str, Any]:
    from flightlog.otel.decode import decode

    out: dict[str, Any] = {}
    for path in _fixtures():
        name = f"{path.parent.name}/{path.stem}"
        body = path.read_bytes()
        out[f"server json {name}"] = _server_path(body, "application/json")
        out[f"server protobuf {name}"] = _server_path(_as_protobuf(body), "application/x-protobuf")
        out[f"decode {name}"] = _unordered_edges(_records(decode(body, "application/json")))
        if path.stem in ONE_SPAN_PER_REQUEST:
            where = tmp / name.replace("/", "-")
            where.mkdir(parents=True)
            out[f"one span per request {name}"] = _one_span_per_request(body, where)
    for fw in sorted({p.parent.name for p in _fixtures()}):
        body = _merged([p for p in _fixtures() if p.parent.name == fw])
        out[f"server merged {fw}"] = _server_path(body, "application/json")
        out[f"decode merged {fw}"] = _unordered_edges(_records(decode(body, "application/json")))
    return json.loads(json.dumps(out, sort_keys=True, default=str))


def digests(records: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Each path's parts (runs, steps, edges, ...) as a short SHA-256 of canonical JSON."""
    import hashlib

    return {
        key: {
            part: hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:20]
            for part, value in sorted(parts.items())
        }
        for key, parts in sorted(records.items())
    }


@pytest.mark.skipif(not EXPECTED.exists(), reason="expectation not written")
def test_every_fixture_decodes_to_the_stored_records(tmp_path: Path) -> None:
    want = json.loads(EXPECTED.read_text())
    got = digests(compute(tmp_path))
    assert sorted(got) == sorted(want)
    wrong = [
        f"{key}: {part}" for key in want for part in want[key] if got[key][part] != want[key][part]
    ]
    assert not wrong, wrong


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        records = compute(Path(tmp))
    if "--write" in sys.argv:
        EXPECTED.write_text(json.dumps(digests(records), indent=1) + "\n")
        print(f"wrote {EXPECTED}")
    if "--dump" in sys.argv:
        dump = Path(sys.argv[sys.argv.index("--dump") + 1])
        dump.write_text(json.dumps(records, sort_keys=True, indent=1) + "\n")
        print(f"wrote {dump}")
