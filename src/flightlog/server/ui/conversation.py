"""An imported conversation on the run page: one row per message with its full agent name,
what kind of message it is, and its text folded (open to read it all); no timings, which a
transcript does not have."""

from __future__ import annotations

from typing import Any

from flightlog.server.ui._html import PREVIEW, e, pill, q

SUMMARY_CHARS = 200


def _text(raw: bytes | None) -> str:
    from flightlog.payload import decode

    if raw is None:
        return ""
    value = decode(raw)
    return value if isinstance(value, str) else ("" if value is None else str(value))


def messages_table(
    steps: list[Any], payloads: dict[str, bytes], rc_id: str | None, fp_id: str | None
) -> str:
    """The HTML table of a conversation's messages (captured text escaped, cut to PREVIEW)."""
    rows = []
    for s in steps:
        a = s.attributes
        kind = str(a.get("message.kind") or "message")
        if kind == "execution":
            author = a.get("message.author_step")
            kind_html = e(f"execution result ({a.get('execution.outcome') or '?'})")
            if isinstance(author, int):
                kind_html += f" of the code in <a href='#step-{author}'>step {author}</a>"
        elif a.get("message.to"):
            kind_html = e(f"{kind} to {a['message.to']}")
        else:
            kind_html = e(kind)
        cls = " class='rc'" if s.id == rc_id else " class='fp'" if s.id == fp_id else ""
        role = (" <span class='pill warn'>root cause</span>" if s.id == rc_id else "") + (
            " <span class='pill bad'>failure point</span>" if s.id == fp_id else ""
        )
        text = _text(payloads.get(s.output_hash or ""))
        head = " ".join(text.split())[:SUMMARY_CHARS]
        more = ""
        body = text
        if len(body) > PREVIEW:
            body = body[:PREVIEW]
            more = (
                f"<span class='muted'>… {len(text) - PREVIEW:,} more characters: "
                f"<a href='/api/v1/payloads/{q(s.output_hash or '')}'>full text</a></span>"
            )
        folded = (
            f"<details><summary>{e(head) or '<i>(empty)</i>'}"
            f"{'…' if len(text) > len(head) else ''}</summary><pre>{e(body)}</pre>{more}"
            "</details>"
        )
        speaker = a.get("speaker")
        who = e(s.agent or "") + (f" <span class='muted'>[{e(speaker)}]</span>" if speaker else "")
        rows.append(
            f"<tr id='step-{s.index}'{cls}><td class='num'>{s.index}</td><td>{who}{role}</td>"
            f"<td>{kind_html}</td><td>{pill(s.status)}</td><td>{folded}</td></tr>"
        )
    return (
        "<h2>Messages</h2><p class='muted'>An imported conversation: messages in order; "
        "their times were not recorded.</p><table><tr><th>#</th><th>agent</th><th>kind</th>"
        f"<th>status</th><th>text</th></tr>{''.join(rows)}</table>"
    )
