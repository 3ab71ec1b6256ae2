"""Conversation logs as runs: each message becomes a step, so ``why``, ``show`` and ``report``
work on them.

Formats (``FORMATS``; ``auto`` picks by shape):

* ``whowhen`` — a JSON object with a ``history`` list of messages that carry ``name``, or only
  ``role`` as Magentic-One logs do (``Orchestrator (-> WebSurfer)``), plus ``question`` and
  ``ground_truth`` when known (the Who&When benchmark);
* ``chat`` — a JSON list of messages with ``name``/``role``/``content`` (or an object with a
  ``messages`` list): the OpenAI chat format, including assistant ``tool_calls`` and ``tool``
  messages answering them by ``tool_call_id``;
* ``autogen`` — AutoGen/AG2 group-chat logs: the ``{content, role, name}`` messages of a
  ``GroupChat`` (a list, or an object with ``messages`` or ``chat_history``), or AutoGen
  AgentChat messages ``{source, type, content}`` (``TextMessage``, ``ToolCallRequestEvent``,
  ``ToolCallExecutionEvent``, ``HandoffMessage``...), e.g. a saved ``TaskResult``.

Each message becomes step ``i + 1`` (``index`` is 1-based; message ``i`` of the log). The agent
is the speaker (full name; a Magentic-One role's agent part), the step's output the message text,
its attributes the message's kind (``flightlog.conversation`` reads it: task, work, execution,
instruction, thought, control), role and, for an execution result, the step whose code ran. Steps
are 1 ns apart: a transcript has order, not timing, and the run says so (``timing: order``).
Lineage is kept only where it says something: the author of executed code -> the execution
result, and an instruction -> the addressee's next message. The run is ``failed`` by default
(failure logs) with the question as its input.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flightlog.errors import InputError
from flightlog.forensics.conversation import Message, read_messages
from flightlog.model import Batch, Edge, ErrorInfo, Payload, Run, Step
from flightlog.payload import payload_of

if TYPE_CHECKING:
    pass

FORMATS = ("auto", "whowhen", "chat", "autogen")
STARTED_NS = 1_700_000_000_000_000_000
TIMING = "order"  # run attribute "timing": steps are ordered but their times are not known


def _payload(value: Any) -> Payload:
    return payload_of(value)  # the one encoder of every front door


def is_conversation(run: Run) -> bool:
    """Whether a run was imported from a conversation log."""
    return run.source == "import" and "conversation" in run.attributes


# -- formats -----------------------------------------------------------------------------------


def detect_format(data: Any) -> str:
    """The format of a parsed log, by shape (see the module docstring)."""
    if isinstance(data, dict) and "history" in data:
        return "whowhen"
    msgs = _message_list(data)
    if msgs is not None and any(isinstance(m, dict) and "source" in m for m in msgs):
        return "autogen"
    if msgs is not None:
        return "chat"
    raise InputError(
        "not a conversation log: expected a JSON object with a 'history' list (Who&When), "
        "a list of messages, or an object with a 'messages' or 'chat_history' list"
    )


def _message_list(data: Any) -> list[Any] | None:
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        for key in ("messages", "chat_history", "history"):
            if isinstance(data.get(key), list):
                return list(data[key])
    return None


def normalise(data: Any, fmt: str = "auto") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The log's messages as ``{name?, role?, content, tool_calls?, tool_call_id?, is_error?}``
    dicts, and its metadata (``question``, ``ground_truth``). Raises ``InputError`` with what
    was expected for anything else."""
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "auto":
        fmt = detect_format(data)
    meta: dict[str, Any] = {}
    if fmt == "whowhen":
        if not isinstance(data, dict) or not isinstance(data.get("history"), list):
            raise InputError("a Who&When log is a JSON object with a 'history' list of messages")
        raw = data["history"]
        meta = {k: data.get(k) for k in ("question", "ground_truth") if data.get(k) is not None}
    else:
        found = _message_list(data)
        if found is None:
            raise InputError(
                f"a {fmt} log is a JSON list of messages, or an object with a 'messages' list"
            )
        raw = found
        if isinstance(data, dict):
            meta = {k: data.get(k) for k in ("question", "task") if data.get(k) is not None}
            if "task" in meta and "question" not in meta:
                meta["question"] = meta.pop("task")
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise InputError(f"message {i} is {type(m).__name__}, expected a JSON object")
    msgs = _from_agentchat(raw) if fmt == "autogen" else [dict(m) for m in raw]
    for i, m in enumerate(msgs):
        if not any(k in m for k in ("content", "tool_calls")):
            raise InputError(f"message {i} has no 'content'")
        if m.get("name") in (None, "") and m.get("role") in (None, ""):
            raise InputError(f"message {i} has neither 'name' nor 'role': who said it?")
    return msgs, meta


def _from_agentchat(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """AutoGen AgentChat messages ``{source, type, content}`` as chat messages; AG2 group-chat
    messages (``name``/``role``) pass through."""
    out: list[dict[str, Any]] = []
    for m in raw:
        if "source" not in m:
            out.append(dict(m))
            continue
        src, kind, content = str(m.get("source")), str(m.get("type") or ""), m.get("content")
        if kind == "ToolCallRequestEvent" and isinstance(content, list):
            calls = [
                {
                    "id": c.get("id"),
                    "type": "function",
                    "function": {"name": c.get("name"), "arguments": c.get("arguments")},
                }
                for c in content
                if isinstance(c, dict)
            ]
            out.append({"name": src, "role": "assistant", "content": None, "tool_calls": calls})
        elif kind == "ToolCallExecutionEvent" and isinstance(content, list):
            for r in content:
                if isinstance(r, dict):
                    out.append(
                        {
                            "name": str(r.get("name") or src),
                            "role": "tool",
                            "content": r.get("content"),
                            "tool_call_id": r.get("call_id"),
                            "is_error": bool(r.get("is_error")),
                        }
                    )
        else:
            role = "user" if src == "user" else "assistant"
            out.append({"name": src, "role": role, "content": content, "type": kind})
    return out


# -- records -----------------------------------------------------------------------------------


def conversation_batch(
    raw: list[dict[str, Any]],
    *,
    workflow: str,
    key: str,
    meta: dict[str, Any] | None = None,
    conversation: str = "chat",
    status: str = "failed",
    started_ns: int = STARTED_NS,
) -> Batch:
    """The records of one conversation (messages as ``normalise`` returns them). ``key``
    makes the run id, so importing the same log twice changes nothing."""
    meta = meta or {}
    msgs = read_messages(raw)
    run_id = hashlib.sha256(f"{workflow}|{key}".encode()).hexdigest()[:32]
    batch = Batch()
    question = _payload({"question": meta.get("question")})
    batch.payloads.append(question)
    ids = [hashlib.sha256(f"{run_id}|{i}".encode()).hexdigest()[:16] for i in range(len(msgs))]
    for m in msgs:
        out = _payload(m.text)
        batch.payloads.append(out)
        batch.steps.append(_step(m, run_id, ids, out.hash, started_ns))
    for m in msgs:
        if m.kind == "execution" and m.author_index is not None:
            batch.edges.append(
                Edge(
                    run_id,
                    ids[m.author_index],
                    ids[m.index],
                    "data",
                    "declared",
                    f"executed the code of step {m.author_index + 1}",
                )
            )
        if m.kind == "instruction" and m.addressee:
            nxt = next((n for n in msgs[m.index + 1 :] if n.agent == m.addressee), None)
            if nxt is not None:
                batch.edges.append(
                    Edge(run_id, ids[m.index], ids[nxt.index], "handoff", "declared", "instruction")
                )
    final = next((m.index for m in reversed(msgs) if m.kind in ("work", "task")), None)
    reason = "final answer is wrong" if status == "failed" else None
    if reason and meta.get("ground_truth") is not None:
        reason += f" (expected {str(meta['ground_truth'])[:200]})"
    attrs: dict[str, Any] = {"transcript": key, "conversation": conversation, "timing": TIMING}
    if final is not None:
        attrs["conversation.final_step"] = final + 1
    batch.runs.append(
        Run(
            id=run_id,
            workflow=workflow,
            started_ns=started_ns,
            ended_ns=started_ns + len(msgs) + 1,
            status=status,
            reason=reason,
            input_hash=question.hash,
            source="import",
            declared_steps=len(msgs) or None,
            attributes=attrs,
        )
    )
    return batch


def _step(m: Message, run_id: str, ids: list[str], out_hash: str, started_ns: int) -> Step:
    attrs: dict[str, Any] = {"message.kind": m.kind, "role": m.role}
    if m.speaker != m.agent:
        attrs["speaker"] = m.speaker
    if m.addressee:
        attrs["message.to"] = m.addressee
    if m.author_index is not None:
        attrs["message.author_step"] = m.author_index + 1
    if m.outcome:
        attrs["execution.outcome"] = m.outcome
    failed = m.kind == "execution" and m.outcome == "failed"
    kind = "tool" if m.kind == "execution" else "agent"
    if (m.role or "").lower() in ("user", "human") and m.kind == "task" and m.agent == m.role:
        kind = "human"
    names = {
        "task": "task",
        "work": "message",
        "execution": "execution result",
        "instruction": f"instruction to {m.addressee}" if m.addressee else "instruction",
        "thought": "thought",
        "control": "control",
    }
    t = started_ns + m.index + 1
    return Step(
        run_id=run_id,
        id=ids[m.index],
        name=names[m.kind],
        kind=kind,
        index=m.index + 1,
        started_ns=t,
        ended_ns=t,
        agent=m.agent,
        status="error" if failed else "ok",
        output_hash=out_hash,
        error=ErrorInfo("ExecutionFailed", m.detail) if failed else None,
        attributes=attrs,
    )


def transcript_batch(
    data: dict[str, Any], *, workflow: str, key: str, started_ns: int = STARTED_NS
) -> Batch:
    """The records of one Who&When transcript (either message format)."""
    if not isinstance(data, dict) or not isinstance(data.get("history"), list):
        raise InputError(f"transcript {key!r} has no 'history' list of messages")
    try:
        raw, meta = normalise(data, "whowhen")
    except InputError as exc:
        raise InputError(f"transcript {key!r}: {exc}") from exc
    return conversation_batch(
        raw, workflow=workflow, key=key, meta=meta, conversation="whowhen", started_ns=started_ns
    )


def read_transcripts(
    paths: list[str],
    *,
    workflow: str,
    fmt: str = "auto",
    status: str = "failed",
) -> list[Batch]:
    """Read and check conversation log files: one batch (one run of ``workflow``) per file,
    its id derived from the file name, so importing a file twice changes nothing. Every file
    is read and checked before any batch is returned (``flightlog.app.record_ended`` stores
    them and runs the run-end pipeline)."""
    if status not in ("failed", "succeeded", "unknown"):
        raise InputError(f"unknown outcome {status!r}; expected failed, succeeded or unknown")
    batches = []
    for i, name in enumerate(paths):
        path = Path(name)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}") from exc
        except ValueError as exc:
            raise InputError(f"{path} is not JSON: {exc}") from exc
        try:
            chosen = detect_format(data) if fmt == "auto" else fmt
            if chosen == "whowhen" and not (
                isinstance(data, dict) and isinstance(data.get("history"), list)
            ):
                raise InputError("no 'history' list of messages (the Who&When format)")
            raw, meta = normalise(data, chosen)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from exc
        batches.append(
            conversation_batch(
                raw,
                workflow=workflow,
                key=path.name,
                meta=meta,
                conversation=chosen,
                status=status,
                started_ns=STARTED_NS + i * 10_000_000_000,
            )
        )
    return batches
