"""Semantic logs as runs: a multi-agent chat transcript (the Who&When format) becomes a run
whose steps are the messages, so the same attribution can be applied to it.

Each message ``{"name", "role", "content"}`` becomes step ``i + 1``: agent = the speaker,
kind ``tool`` for code-execution speakers (names containing "terminal", "executor" or
"computer") and ``agent`` otherwise, output = the message text. In a group chat every message
is in the context of the next one, so consecutive steps are joined by data edges (evidence
``declared``). The run failed (these are failure logs), with the question as input.
"""

from __future__ import annotations

import hashlib
from typing import Any

from flightlog.errors import InputError
from flightlog.model import Batch, Edge, Payload, Run, Step
from flightlog.payload import payload_of

_TOOLISH = ("terminal", "executor", "computer")


def _payload(value: Any) -> Payload:
    return payload_of(value)  # the one encoder of every front door


def transcript_batch(
    data: dict[str, Any], *, workflow: str, key: str, started_ns: int = 1_700_000_000_000_000_000
) -> Batch:
    """The records of one transcript. ``key`` makes the run id (stable per transcript)."""
    history = data.get("history")
    if not isinstance(history, list) or not all(isinstance(m, dict) for m in history):
        raise InputError(f"transcript {key!r} has no 'history' list of messages")
    run_id = hashlib.sha256(f"{workflow}|{key}".encode()).hexdigest()[:32]
    batch = Batch()
    question = _payload({"question": data.get("question")})
    batch.payloads.append(question)
    t = started_ns
    prev: Step | None = None
    for i, msg in enumerate(history):
        name = str(msg.get("name") or msg.get("role") or "unknown")
        content = msg.get("content")
        out = _payload(content if isinstance(content, str) else str(content))
        batch.payloads.append(out)
        step = Step(
            run_id=run_id,
            id=hashlib.sha256(f"{run_id}|{i}".encode()).hexdigest()[:16],
            name=f"{name} turn",
            kind="tool" if any(x in name.lower() for x in _TOOLISH) else "agent",
            index=i + 1,
            started_ns=t + 1,
            ended_ns=t + 1_000_000,
            agent=name,
            status="ok",
            output_hash=out.hash,
            attributes={"role": msg.get("role")},
        )
        t += 1_000_000
        if prev is not None:
            batch.edges.append(Edge(run_id, prev.id, step.id, "data", "declared", "chat context"))
        batch.steps.append(step)
        prev = step
    reason = "final answer is wrong"
    if data.get("ground_truth") is not None:
        reason += f" (expected {str(data['ground_truth'])[:200]})"
    batch.runs.append(
        Run(
            id=run_id,
            workflow=workflow,
            started_ns=started_ns,
            ended_ns=t + 1,
            status="failed",
            reason=reason,
            input_hash=question.hash,
            source="import",
            attributes={"transcript": key},
        )
    )
    return batch


def import_transcripts(store: Any, paths: list[str], *, workflow: str) -> list[str]:
    """Import Who&When-style transcript files (a JSON object per file with a ``history``
    list) as failed runs of ``workflow``; returns the run ids. Idempotent per file name.
    The run-end pipeline (detection, attribution) runs on the imported runs."""
    import json
    from pathlib import Path

    from flightlog import pipeline

    ids: list[str] = []
    for i, name in enumerate(paths):
        path = Path(name)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}") from exc
        except ValueError as exc:
            raise InputError(f"{path} is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise InputError(f"{path}: expected a JSON object with a 'history' list")
        batch = transcript_batch(
            data,
            workflow=workflow,
            key=path.name,
            started_ns=1_700_000_000_000_000_000 + i * 10_000_000_000,
        )
        store.write(batch)
        ids.append(batch.runs[0].id)
    pipeline.runs_ended(store, ids)
    return ids
