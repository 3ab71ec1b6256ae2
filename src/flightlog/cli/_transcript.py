"""How ``flightlog show`` prints an imported conversation: each message with its full agent
name, what kind of message it is, and its text folded to a few lines; order, not timings."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from flightlog.cli._common import fmt_time
from flightlog.model import RunRecord

if TYPE_CHECKING:
    from flightlog.store.base import Store

FOLD_LINES = 4
FOLD_WIDTH = 110


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """Captured text with terminal control characters (escape sequences) shown, not obeyed."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text.replace("\t", "    "))


def fold(text: str, lines: int = FOLD_LINES, width: int = FOLD_WIDTH) -> list[str]:
    """The first ``lines`` non-empty lines of ``text``, each cut to ``width`` characters, and a
    last line saying how much was left out. Control characters are made visible."""
    rows = [visible(ln.rstrip()) for ln in text.splitlines() if ln.strip()]
    out = [ln if len(ln) <= width else ln[: width - 1] + "…" for ln in rows[:lines]]
    hidden = len(rows) - len(out)
    if hidden > 0:
        out.append(f"… {hidden} more line(s), {len(text):,} characters in all (--json shows all)")
    return out or ["(empty message)"]


def _label(step: Any) -> str:
    a = step.attributes
    kind = a.get("message.kind") or "message"
    if kind == "execution":
        author = a.get("message.author_step")
        outcome = a.get("execution.outcome") or "?"
        return f"execution result ({outcome})" + (
            f" of the code in step {author}" if author else ""
        )
    if kind == "instruction" and a.get("message.to"):
        return f"instruction to {a['message.to']}"
    return str(kind)


def render_transcript(store: Store, record: RunRecord, failed_at: Any, n: int) -> list[str]:
    """Text lines for ``flightlog show`` of a conversation run."""
    from flightlog.payload import decode

    run = record.run
    steps = sorted(record.steps, key=lambda s: s.index)
    payloads = store.get_payloads([s.output_hash for s in steps if s.output_hash])
    conv = run.attributes.get("conversation", "chat")
    lines = [
        f"run {run.id}  {run.workflow}",
        f"status {run.status}  imported {conv} conversation, {len(steps)} messages  "
        "timing unknown (messages in order only)",
    ]
    if run.started_ns and run.attributes.get("timing") != "order":
        lines[-1] += f"  started {fmt_time(run.started_ns)}"
    if failed_at is not None:
        lines.append(
            f"failed at step {failed_at.index} of {n} ({failed_at.agent})"
            + (f": {run.reason}" if run.reason else "")
        )
    elif run.reason:
        lines.append(f"reason: {run.reason}")
    lines.append("")
    findings: dict[str | None, list[Any]] = {}
    for f in record.findings:
        findings.setdefault(f.step_id, []).append(f)
    for s in steps:
        mark = "✗ " if s.status == "error" else ""
        speaker = s.attributes.get("speaker")
        who = s.agent or "-"
        if speaker and speaker != who:
            who += f"  [{speaker}]"
        lines.append(f"{s.index:>3}  {visible(who)}  ·  {mark}{visible(_label(s))}")
        value = decode(payloads.get(s.output_hash or ""))
        text = value if isinstance(value, str) else ("" if value is None else str(value))
        for ln in fold(text):
            lines.append(f"     │ {ln}")
        for f in findings.get(s.id, []):
            lines.append(f"     finding [{f.severity}] {f.detector}: {f.message[:120]}")
    by_id = {s.id: s for s in steps}
    edges = sorted(
        (e for e in record.edges if e.kind != "parent"),
        key=lambda e: (by_id[e.target].index if e.target in by_id else 0, e.source),
    )
    if edges:
        lines.append("")
        lines.append("lineage:")
        for e in edges:
            src, dst = by_id.get(e.source), by_id.get(e.target)
            lines.append(
                f"  {src.index if src else e.source} -> {dst.index if dst else e.target}"
                f"  ({e.kind}: {e.detail or e.evidence})"
            )
    return lines
