"""Conversations as what they are: who said what, what was executed and whose code it was.

A multi-agent conversation (an AutoGen/AG2 group chat, a Magentic-One log, an OpenAI chat with
tool calls) has no typed outputs, no checks and no history of the same step. What it does have
is structure, and this module reads it:

* **speakers** — ``name`` when a message carries one, else its ``role``; Magentic-One roles such
  as ``Orchestrator (-> WebSurfer)`` or ``Orchestrator (thought)`` are the agent
  ``Orchestrator`` giving an instruction to ``WebSurfer`` or thinking aloud;
* **executors** — speakers whose messages are execution results (``exitcode: 1 ...``, a
  ``tool`` message, a script's exit code); an execution result is attributed to the **author of
  what was executed** (the latest message with a code block, or the tool call it answers), never
  to the executor;
* **control** — orchestration messages (instructions, thoughts, termination words, empty
  messages) told apart from **work**;
* **the task** — the first message, which states the task; it is work only when it carries code
  of its own that was then executed.

``attribute_messages`` then names the decisive turn, without a model:

1. the earliest work turn whose code failed or printed nothing when it was executed (from then
   on the conversation works from a broken result); else
2. the first work turn: the one that chose the approach the conversation then followed.

It keeps the evidence and a ranked list of candidate turns. Confidences are calibrated on the
development half of the Who&When Algorithm-Generated logs (odd-numbered files; the rate at which
each rule named the annotated step exactly, Laplace-smoothed) and reported on the other half in
docs/benchmarks.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["task", "work", "execution", "instruction", "thought", "control"]

# Calibrated step-level precision of each rule on the dev half of Who&When Algorithm-Generated
# (docs/benchmarks.md): execution failed 13/38 -> (13+1)/(38+2) = 0.35; first work 10/22 -> 0.46;
# task code 3/3 on only 3 logs, shrunk to 0.6; fallback (no work message) unmeasured, 0.2.
CONFIDENCE = {"execution failed": 0.35, "first work": 0.45, "task code": 0.6, "fallback": 0.2}

_ROLE_NOTE = re.compile(r"^\s*(?P<agent>[^()]+?)\s*\((?P<note>[^()]*)\)\s*$")
_EXITCODE = re.compile(r"^\s*exitcode:\s*(?P<code>-?\d+)", re.IGNORECASE)
# A script's exit status as code executors word it ("exited with ... code: 1", "exit code 2").
_EXIT_PHRASE = re.compile(
    r"\bexit(?:ed)?\b[^\n]{0,40}?\bcode\b(?:\s+was)?\W{0,3}(?P<code>-?\d+)", re.IGNORECASE
)
_NO_CODE = re.compile(r"^\s*there is no code", re.IGNORECASE)
_CODE_OUTPUT = re.compile(r"(?:code output|its output was)\s*:\s*(?P<out>.*)", re.I | re.S)
_FENCE = re.compile(r"```")
# Words that end a group chat (AutoGen's default is_termination_msg) and nothing else.
_TERMINATION = re.compile(r"^\W*(terminate|exit|stop|done)\W*$", re.IGNORECASE)
_NAME_TOKENS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_EXECUTOR_TOKENS = {"terminal", "executor", "interpreter"}
_TOOL_ROLES = {"tool", "function", "ipython"}
_USER_ROLES = {"user", "human"}
_SYSTEM_ROLES = {"system", "developer"}


@dataclass(slots=True)
class Message:
    """One message of a conversation, as read by ``read_messages``.

    ``index`` is 0-based (its position in the log). ``agent`` is who spoke (for a Magentic-One
    role, the part before the parentheses); ``speaker`` the name as written. ``kind`` is what the
    message is; for an ``execution``, ``author_index`` is the message whose code or tool call
    was executed and ``outcome`` how the execution went (``failed``, ``empty``, ``ok`` or
    ``nothing`` when there was no code to run)."""

    index: int
    speaker: str
    agent: str
    role: str | None
    text: str
    kind: Kind = "work"
    addressee: str | None = None
    author_index: int | None = None
    outcome: str | None = None
    detail: str = ""
    has_code: bool = False
    tool_calls: list[str] = field(default_factory=list)
    tool_call_id: str | None = None


@dataclass(slots=True)
class Candidate:
    """A turn that may be the decisive mistake, with why and how likely."""

    index: int
    agent: str
    confidence: float
    reasons: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "agent": self.agent,
            "confidence": round(self.confidence, 3),
            "reasons": list(self.reasons),
        }


@dataclass(slots=True)
class Verdict:
    """The ranked candidates (best first), the evidence and the rule that chose."""

    candidates: list[Candidate]
    evidence: list[str]
    method: str
    final_answer_index: int | None = None

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None


# -- reading ---------------------------------------------------------------------------------


def text_of(content: Any) -> str:
    """A message's text: a string as is; OpenAI content parts joined; anything else as JSON."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
            else:
                parts.append(_json(part))
        return "\n".join(parts)
    return _json(content)


def _json(value: Any) -> str:
    import json

    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def split_role(speaker: str) -> tuple[str, str | None]:
    """``"Orchestrator (-> WebSurfer)"`` -> ``("Orchestrator", "-> WebSurfer")``."""
    m = _ROLE_NOTE.match(speaker)
    if not m:
        return speaker.strip(), None
    return m.group("agent").strip(), m.group("note").strip()


def name_tokens(name: str) -> list[str]:
    """Words of an agent name: ``ComputerTerminal`` and ``Computer_terminal`` give
    ``["computer", "terminal"]``; ``WomenInComputerScienceHistory_Expert`` gives no
    ``terminal``."""
    return [t.lower() for t in _NAME_TOKENS.findall(name)]


def execution_outcome(text: str) -> tuple[str, str] | None:
    """``(outcome, detail)`` when ``text`` reads as a code executor's report, else None."""
    head = text.lstrip()[:400]
    if _NO_CODE.match(head):
        return "nothing", "there was no code to execute"
    lead = " ".join(head.split("\n", 2)[:2])  # an executor's report states the exit status first
    m = _EXITCODE.match(head) or _EXIT_PHRASE.search(lead)
    if not m:
        return None
    code = int(m.group("code"))
    out_m = _CODE_OUTPUT.search(text)
    output = out_m.group("out").strip() if out_m else text[m.end() :].strip(" )\n")
    if code != 0:
        last = [ln.strip() for ln in output.splitlines() if ln.strip()]
        return "failed", f"exit code {code}" + (f": {last[-1][:160]}" if last else "")
    if not output or _NO_OUTPUT.search(output[:200]) or _NO_OUTPUT.search(lead[: m.start()]):
        return "empty", "exit code 0 but no output"
    return "ok", "exit code 0"


_NO_OUTPUT = re.compile(r"(^|\bbut )(produced no output|no output)\b", re.IGNORECASE)


def read_messages(raw: Sequence[dict[str, Any]]) -> list[Message]:
    """Read a list of message dicts (Who&When with ``name`` or with only ``role``, OpenAI chat
    with ``tool_calls``/``tool_call_id``, AG2 group chats) into ``Message``s with their kinds,
    executors and the authors of what was executed."""
    msgs: list[Message] = []
    for i, m in enumerate(raw):
        role = m.get("role")
        role_s = str(role) if role is not None else None
        name = m.get("name")
        speaker = str(name) if name not in (None, "") else (role_s or "unknown")
        agent, note = split_role(speaker)
        calls = [
            str(c.get("id"))
            for c in m.get("tool_calls") or []
            if isinstance(c, dict) and c.get("id") is not None
        ]
        text = text_of(m.get("content"))
        if not text and m.get("tool_calls"):
            text = _json(m.get("tool_calls"))
        msg = Message(
            index=i,
            speaker=speaker,
            agent=agent,
            role=role_s,
            text=text,
            has_code=bool(_FENCE.search(text)) or bool(calls),
            tool_calls=calls,
            tool_call_id=str(m["tool_call_id"]) if m.get("tool_call_id") is not None else None,
        )
        if note is not None:
            low = note.lower()
            if low.startswith("->"):
                msg.kind, msg.addressee = "instruction", note[2:].strip() or None
            elif "thought" in low or "plan" in low:
                msg.kind = "thought"
            else:
                msg.kind = "control"
        msgs.append(msg)
    executors = find_executors(msgs)
    by_call = {c: m.index for m in msgs for c in m.tool_calls}
    for msg in msgs:
        outcome = execution_outcome(msg.text)
        is_tool_role = (msg.role or "").lower() in _TOOL_ROLES
        if msg.agent in executors or is_tool_role:
            msg.kind = "execution"
            msg.has_code = False
            if outcome is not None:
                msg.outcome, msg.detail = outcome
            elif is_tool_role:
                err = tool_error(msg.text)
                if raw[msg.index].get("is_error") or err:
                    msg.outcome, msg.detail = "failed", err or "the tool reported an error"
                elif msg.text.strip():
                    msg.outcome, msg.detail = "ok", "tool result"
                else:
                    msg.outcome, msg.detail = "empty", "empty tool result"
            if msg.tool_call_id in by_call:
                msg.author_index = by_call[msg.tool_call_id]
            elif msg.outcome != "nothing":
                msg.author_index = _author(msgs, msg.index, executors)
        elif msg.kind == "work" and (not msg.text.strip() or _TERMINATION.match(msg.text)):
            msg.kind = "control"
    for msg in msgs:
        if msg.kind == "work" and (msg.role or "").lower() in _SYSTEM_ROLES:
            msg.kind = "control"
    first = next((m for m in msgs if m.kind != "control"), None)
    if first is not None and first.kind == "work":
        first.kind = "task"  # the first message that is not a system prompt states the task
    return msgs


def tool_error(text: str) -> str:
    """What a tool result says went wrong, when it is an error: a JSON object with a non-empty
    ``error``/``errors`` field or ``status: "error"``, or text that starts with ``Error``."""
    head = text.strip()
    if head[:1] == "{":
        import json

        try:
            value = json.loads(head)
        except ValueError:
            value = None
        if isinstance(value, dict):
            err = value.get("error") or value.get("errors")
            if err:
                return f"the tool returned an error: {str(err)[:160]}"
            if str(value.get("status", "")).lower() == "error":
                return "the tool returned status error"
    if re.match(r"^(error|exception)\b", head, re.IGNORECASE):
        return f"the tool returned an error: {head.splitlines()[0][:160]}"
    return ""


def find_executors(msgs: Iterable[Message]) -> set[str]:
    """Agents that execute rather than author: most of their messages are execution reports,
    or their name has the word ``terminal``, ``executor`` or ``interpreter`` (whole words, so
    ``WomenInComputerScienceHistory_Expert`` is not one)."""
    seen: dict[str, list[bool]] = {}
    for m in msgs:
        seen.setdefault(m.agent, []).append(execution_outcome(m.text) is not None)
    out = set()
    for agent, flags in seen.items():
        if _EXECUTOR_TOKENS & set(name_tokens(agent)) or sum(flags) * 2 > len(flags):
            out.add(agent)
    return out


def _author(msgs: list[Message], at: int, executors: set[str]) -> int | None:
    """The message whose code the execution at ``at`` ran: the latest earlier message with a
    code block by a non-executor."""
    for j in range(at - 1, -1, -1):
        m = msgs[j]
        if m.agent not in executors and m.has_code:
            return j
    return None


# -- attribution -----------------------------------------------------------------------------


def attribute_messages(msgs: Sequence[Message]) -> Verdict:
    """Name the decisive turn of a failed conversation (see the module docstring)."""
    if not msgs:
        return Verdict([], ["the conversation has no messages"], "none")
    evidence: list[str] = []
    executed: dict[int, list[Message]] = {}
    for m in msgs:
        if m.kind == "execution" and m.author_index is not None:
            executed.setdefault(m.author_index, []).append(m)
    work = [
        m
        for m in msgs
        if m.kind == "work" or (m.kind == "task" and m.has_code and m.index in executed)
    ]
    final = _final_answer(msgs)
    failing = [
        m for m in work if any(x.outcome in ("failed", "empty") for x in executed.get(m.index, []))
    ]
    scores: dict[int, tuple[float, list[str]]] = {}

    def add(m: Message, weight: float, reason: str) -> None:
        w, rs = scores.get(m.index, (0.0, []))
        scores[m.index] = (1 - (1 - w) * (1 - weight), [*rs, reason])

    for m in work:
        for x in executed.get(m.index, []):
            if x.outcome in ("failed", "empty"):
                add(m, 0.5, f"its code failed when executed at step {x.index + 1} ({x.detail})")
    if work:
        first = work[0]
        reason = (
            "the task message's own code, executed first"
            if first.kind == "task"
            else "the first turn that does work: it chose the approach the conversation followed"
        )
        add(first, 0.4, reason)
    if final is not None and msgs[final].kind in ("work", "task"):
        add(msgs[final], 0.15, "the answer the conversation ended on")

    if failing:
        chosen, method = failing[0], "execution failed"
    elif work:
        chosen = work[0]
        method = "task code" if chosen.kind == "task" else "first work"
    else:
        instr = [m for m in msgs if m.kind in ("instruction", "thought")]
        chosen = instr[0] if instr else msgs[0]
        method = "fallback"
        add(chosen, 0.2, "no work turn: the first orchestration message")

    execs = [m for m in msgs if m.kind == "execution" and m.outcome in ("failed", "empty", "ok")]
    bad = [m for m in execs if m.outcome != "ok"]
    if execs:
        evidence.append(
            f"{len(execs)} code execution(s), {len(bad)} failed or printed nothing"
            + (f" (first at step {bad[0].index + 1})" if bad else "")
        )
    controls = sum(m.kind in ("control", "instruction", "thought") for m in msgs)
    if controls:
        evidence.append(f"{controls} orchestration/control message(s) not counted as work")
    if final is not None:
        evidence.append(
            f"step {final + 1} ({msgs[final].agent}) gave the answer the conversation ended on"
        )
    if failing:
        later_ok = [
            x
            for m in work
            if m.index > failing[0].index
            for x in executed.get(m.index, [])
            if x.outcome == "ok"
        ]
        if not later_ok:
            evidence.append(
                f"no execution succeeded after step {failing[0].index + 1}: "
                "the conversation never recovered"
            )

    top = CONFIDENCE[method]
    ranked = sorted(scores.items(), key=lambda kv: (kv[0] != chosen.index, -kv[1][0], kv[0]))
    cands = []
    rest = 1.0 - top
    total_other = sum(w for i, (w, _) in ranked if i != chosen.index) or 1.0
    for i, (w, reasons) in ranked:
        conf = top if i == chosen.index else min(top * 0.9, rest * 0.8 * w / total_other)
        cands.append(Candidate(i, msgs[i].agent, conf, reasons))
    if not cands:
        cands.append(Candidate(chosen.index, chosen.agent, top, ["no other evidence"]))
    return Verdict(cands[:8], evidence, method, final)


def _final_answer(msgs: Sequence[Message]) -> int | None:
    """The last work message before the conversation ended (the answer it accepted)."""
    for m in reversed(msgs):
        if m.kind in ("work", "task"):
            return m.index
    return None


# -- on a stored run ---------------------------------------------------------------------------


def messages_of(steps: Sequence[Any], texts: Sequence[str]) -> list[Message]:
    """The messages of an imported conversation run, from its steps (in index order) as
    ``flightlog.forensics.transcripts`` stored them, and their output texts."""
    msgs = []
    for i, (s, text) in enumerate(zip(steps, texts, strict=True)):
        a = s.attributes
        author = a.get("message.author_step")
        msgs.append(
            Message(
                index=i,
                speaker=str(a.get("speaker") or s.agent or "unknown"),
                agent=str(s.agent or "unknown"),
                role=a.get("role"),
                text=text,
                kind=a.get("message.kind") or "work",
                addressee=a.get("message.to"),
                author_index=int(author) - 1 if isinstance(author, int) else None,
                outcome=a.get("execution.outcome"),
                detail=s.error.message if s.error else "",
                has_code=bool(_FENCE.search(text)),
            )
        )
    return msgs


def attribute_run(ctx: Any) -> Any:
    """The ``Attribution`` of an imported conversation run (``flightlog.forensics.why`` calls
    this for runs whose source is a conversation log)."""
    from flightlog.forensics.attribution import Attribution, StepRef, _summary

    run = ctx.run
    steps = sorted(ctx.steps, key=lambda s: s.index)
    texts = []
    for s in steps:
        out = ctx.output(s)
        texts.append(out if isinstance(out, str) else text_of(out))
    msgs = messages_of(steps, texts)
    verdict = attribute_messages(msgs)
    att = Attribution(
        run_id=run.id,
        failed=run.status == "failed",
        workflow=run.workflow,
        status=run.status,
        of_steps=len(steps),
    )
    if run.status != "failed" or not steps or verdict.best is None:
        att.method = "none"
        att.summary = f"run {run.id[:12]} of {run.workflow} {run.status}; nothing to attribute"
        if not steps:
            att.summary = "the conversation has no messages; nothing to attribute"
        return att
    final_step = run.attributes.get("conversation.final_step")
    fp = (
        steps[final_step - 1]
        if isinstance(final_step, int) and final_step <= len(steps)
        else (steps[-1])
    )
    best = verdict.best
    root = steps[best.index]
    att.failure_point = StepRef.of(fp)
    att.root_cause = StepRef.of(root)
    att.chain = [StepRef.of(root)] + ([StepRef.of(fp)] if fp.id != root.id else [])
    att.confidence = best.confidence
    att.hypothesis = att.confidence < 0.5
    att.method = f"conversation: {verdict.method}" + (" [hypothesis]" if att.hypothesis else "")
    att.cause = best.reasons[0] if best.reasons else None
    reason = f"the run failed: {run.reason}" if run.reason else "the run failed"
    att.evidence.append(
        f"{reason}; the conversation ended on step {fp.index} of {len(steps)} ({fp.agent})"
    )
    att.evidence.extend(verdict.evidence)
    for r in best.reasons:
        att.evidence.append(f"step {root.index} ({root.agent}): {r}")
    att.alternatives = [
        {
            "step": StepRef.of(steps[c.index]).to_dict(),
            "score": round(c.confidence, 3),
            "on_chain": False,
            "reason": "; ".join(c.reasons),
        }
        for c in verdict.candidates[1:6]
    ]
    att.summary = _summary(att)
    return att
