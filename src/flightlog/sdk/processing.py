"""Processing: turning queued records into one ``Batch`` ready for a sink.

For each record taken from the queue, in order: payloads addressed by their SHA-256 (the
JSON snapshots the caller took, each kept once per batch), content lineage inferred from
those snapshots through the one lineage engine (``flightlog.lineage.ContentIndex``, one per
running run, bounded in runs and memory, released when the run ends), the runs written
twice in one batch (start and end) merged; then secrets and personal data scrubbed out of the
whole batch (``flightlog.privacy``) before it reaches the store or the network.

This runs on the writer thread, once per recorded step: the per-record work is kept to
what each record needs (a step whose output is too short to be evidence of lineage is not
indexed; a step with no possible source allocates nothing for lineage).
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING

from flightlog.lineage import MIN_CONTENT_BYTES, ContentIndex
from flightlog.model import Batch, Edge, Finding, Payload, Run
from flightlog.payload import DEFAULT_CAP, make_payload
from flightlog.sdk.records import Record, RunEvent, StepDone

if TYPE_CHECKING:
    from flightlog.privacy import Scrubber

log = logging.getLogger("flightlog")

MAX_LINEAGE_RUNS = 10_000  # runs whose outputs are kept for content lineage at once
MAX_LINEAGE_BYTES = 64 * 1024 * 1024  # memory those indexes may hold, in all

_MARKER_START = b'{"$truncated"'  # a truncation marker: make_payload keeps its stated size
_sha256 = hashlib.sha256


class Processed:
    """What one batch of records became: the batch, the runs it ends, the records that
    could not be processed (dropped, with the last error)."""

    __slots__ = ("batch", "ended", "failed", "error")

    def __init__(self, batch: Batch, ended: list[str], failed: int, error: str | None) -> None:
        self.batch = batch
        self.ended = ended
        self.failed = failed
        self.error = error


class BatchBuilder:
    """Records in, one scrubbed ``Batch`` out; holds the lineage indexes of running runs."""

    def __init__(self, *, payload_cap: int = DEFAULT_CAP, privacy: Scrubber | None = None) -> None:
        self.payload_cap = payload_cap
        self.privacy = privacy  # applied to every batch before the sink
        self.lineage: dict[str, ContentIndex] = {}
        self.lineage_bytes = 0

    def reset(self) -> None:
        """Forget every run's lineage (a forked child starts afresh)."""
        self.lineage = {}
        self.lineage_bytes = 0

    def process(self, records: list[Record]) -> Processed:
        batch = Batch()
        steps = batch.steps
        edges = batch.edges
        runs = batch.runs
        payloads: dict[bytes, Payload] = {}  # by data: a value seen twice is hashed once
        capped = False  # a value made a truncation marker: two values may share its hash
        ended: list[str] = []
        failed = 0
        error: str | None = None
        cap = self.payload_cap
        lineage = self.lineage

        def put(data: bytes) -> str:
            nonlocal capped
            p = payloads.get(data)
            if p is None:
                if len(data) <= cap and not data.startswith(_MARKER_START):
                    p = Payload(_sha256(data).hexdigest(), data, len(data), False)
                else:
                    capped = True
                    p = make_payload(data, cap)
                payloads[data] = p
            return p.hash

        for rec in records:
            try:
                if type(rec) is StepDone:
                    s = rec.step
                    inp = rec.input_json
                    out = rec.output_json
                    if inp is not None:
                        s.input_hash = put(inp)
                    if out is not None:
                        s.output_hash = put(out)
                    steps.append(s)
                    index = lineage.get(s.run_id)
                    sources = rec.identity_sources
                    if sources or (index is not None and (index.hashes or index.strings)):
                        self._link(rec, index, edges)
                    if out is not None and len(out) >= MIN_CONTENT_BYTES:
                        # Shorter JSON (``3``, ``true``, ``"ok"``) is never evidence of lineage.
                        if index is None:
                            index = lineage[s.run_id] = ContentIndex()
                        before = index.nbytes
                        index.add_output(s.id, out, s.ended_ns or s.started_ns, inp)
                        if index.nbytes != before:
                            self.lineage_bytes += index.nbytes - before
                            if self.lineage_bytes > MAX_LINEAGE_BYTES:
                                self._bound_lineage()
                        if len(lineage) > MAX_LINEAGE_RUNS:
                            self._bound_lineage()
                elif type(rec) is RunEvent:
                    r = rec.run
                    if rec.input_json is not None:
                        r.input_hash = put(rec.input_json)
                    if rec.output_json is not None:
                        r.output_hash = put(rec.output_json)
                    runs.append(r)
                    if rec.ended:
                        ended.append(r.id)
                        released = lineage.pop(r.id, None)
                        if released is not None:
                            self.lineage_bytes -= released.nbytes
                elif isinstance(rec, Edge):
                    edges.append(rec)
                elif isinstance(rec, Finding):
                    batch.findings.append(rec)
                elif isinstance(rec, Batch):
                    batch.extend(rec)
                else:
                    raise TypeError(f"not a record: {type(rec).__name__}")
            except Exception as exc:  # one malformed record must not sink the batch
                failed += 1
                error = f"{type(exc).__name__}: {exc}"
                log.exception("flightlog could not record %s; it is dropped", type(rec).__name__)
        if capped:
            batch.payloads = list({p.hash: p for p in payloads.values()}.values())
        else:
            batch.payloads = list(payloads.values())
        if len(runs) > 1:
            batch.runs = _last_version(runs)
        if self.privacy is not None:
            from flightlog.privacy import scrub

            scrub(batch, self.privacy)  # secrets out before the store or the network
        return Processed(batch, ended, failed, error)

    @staticmethod
    def _link(rec: StepDone, index: ContentIndex | None, edges: list[Edge]) -> None:
        """The lineage edges into a step: by identity (found on the caller's thread), then
        by content from the run's earlier outputs."""
        s = rec.step
        seen: set[str] = set()
        for source, param in rec.identity_sources:
            if source != s.id and source not in seen:
                seen.add(source)
                edges.append(Edge(s.run_id, source, s.id, "data", "identity", param))
        if index is not None:
            for source, evidence, arg in index.sources(rec.input_json, s.id, s.started_ns):
                if source not in seen:
                    seen.add(source)
                    edges.append(Edge(s.run_id, source, s.id, "data", evidence, arg))

    def _bound_lineage(self) -> None:
        """Forget the oldest runs' lineage indexes beyond the run count and memory budgets."""
        lineage = self.lineage
        while lineage and (
            len(lineage) > MAX_LINEAGE_RUNS or self.lineage_bytes > MAX_LINEAGE_BYTES
        ):
            index = lineage.pop(next(iter(lineage)))
            self.lineage_bytes -= index.nbytes


def _last_version(runs: list[Run]) -> list[Run]:
    """A run written twice in one batch (start and end): keep the last version only, with the
    input recorded at its start."""
    last: dict[str, Run] = {}
    for r in runs:
        prev = last.get(r.id)
        if prev is not None and r.input_hash is None:
            r.input_hash = prev.input_hash
        last[r.id] = r
    return list(last.values())
