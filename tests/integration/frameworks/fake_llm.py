"""A scripted OpenAI-compatible chat-completions endpoint on loopback.

It plays the model of a small claims agent, deciding each reply from the conversation it is
sent (no state between requests, so any framework's retries and re-sends get the same
answer):

1. a ``transfer_to_*`` tool is offered and ``lookup_policy`` is not: call the transfer tool
   (a hand-off to the next agent);
2. ``lookup_policy`` is offered and not yet called: call it for claim C-7;
3. ``compute_payout`` is offered and not yet called: call it with the policy text that
   ``lookup_policy`` returned (so the data flows from one tool to the next through the model),
   or, where ``lookup_policy`` was called by an earlier agent whose answer reaches this one as
   context (a CrewAI task's context), with the text that answer quoted;
4. otherwise answer, quoting the last observation; when the last observation is an error the
   framework caught and handed back, or the context is an earlier agent's apology, the answer
   apologises instead.

Frameworks that finish through a ``final_answer`` tool (smolagents) get the answer as a call
of that tool. Frameworks that prompt in a text protocol of named fields instead of offering
tools (DSPy's ``[[ ## field ## ]]`` adapter, its tools listed in the instructions and its
trajectory of calls and observations in the user message) get the same decision written as
those fields. ``POST /v1/chat/completions`` with ``"stream": true`` is answered as
server-sent events. Run as a script it serves until killed and prints its base URL.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# An exception class name (ConnectionError, ValueError, ...) or a framework's wording for a
# caught exception (CrewAI: "Error executing tool"; Haystack: "Failed to invoke Tool `x` with
# parameters {...}. Error: ..."); a tool's own error JSON ({"error": "..."}) names no
# exception class.
_ERROR_TEXT = re.compile(
    r"\b[A-Z]\w*(Error|Exception)\b|Traceback|[Aa]n error occurred|Error executing tool"
    r"|Failed to invoke\b.*\bError:"
)
_SETTLED = "Claim C-7 settled. "
_SORRY = "Sorry, I could not settle claim C-7: "
_calls = 0
_tokens = 0
_lock = threading.Lock()


def tokens_served() -> int:
    """Prompt plus completion tokens reported as usage so far (by this process)."""
    return _tokens


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict):
                parts.append(str(part.get("text") or part.get("content") or ""))
            else:
                parts.append(str(part))
        return "\n".join(parts)
    return "" if content is None else str(content)


def _called(message: dict[str, Any]) -> list[str]:
    """Tool names an assistant message called (structured calls, or named in its text)."""
    names = [
        str((c.get("function") or {}).get("name"))
        for c in message.get("tool_calls") or []
        if isinstance(c, dict)
    ]
    text = _text(message.get("content"))
    names += re.findall(r"['\"]name['\"]:\s*['\"](\w+)['\"]", text)
    return names


def _observation(messages: list[dict[str, Any]], index: int) -> str | None:
    """The text of the first non-assistant message after ``messages[index]``."""
    for m in messages[index + 1 :]:
        if m.get("role") != "assistant":
            text = _text(m.get("content")).strip()
            return _result_of(re.sub(r"^(Observation:\s*)", "", text).strip())
    return None


def _result_of(text: str) -> str:
    """What a model reads in a tool's result: the text itself, or the text inside a result
    wrapper (Google ADK hands a tool's string result over as ``{"result": "..."}``)."""
    if text.startswith('{"result"'):
        try:
            doc = json.loads(text)
        except ValueError:
            return text
        if isinstance(doc, dict) and list(doc) == ["result"] and isinstance(doc["result"], str):
            return doc["result"]
    return text


def _handed_over(messages: list[dict[str, Any]]) -> str | None:
    """What an earlier agent's answer, quoted in this conversation's prompt as context, says
    (the text after its "Claim C-7 settled. " or its apology), or None."""
    for m in reversed(messages):
        if m.get("role") in ("user", "system"):
            text = _text(m.get("content"))
            for mark in (_SORRY, _SETTLED):
                if mark in text:
                    return (mark if mark == _SORRY else "") + text.rsplit(mark, 1)[1].strip()
    return None


def _looks_caught(text: str | None) -> bool:
    """An exception the framework caught and reported back (not a tool's error JSON)."""
    return bool(text) and bool(_ERROR_TEXT.search(text or ""))


def _base(name: str) -> str:
    """A tool's own name without the namespace a framework qualifies it with (Semantic
    Kernel offers ``Plugin-function``)."""
    return re.split(r"[-.]", name)[-1]


def decide(body: dict[str, Any]) -> dict[str, Any]:
    """The assistant message answering ``body`` (see the module docstring)."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    full = {
        _base(name): name
        for name in (
            str((t.get("function") or {}).get("name") or t.get("name"))
            for t in body.get("tools") or []
            if isinstance(t, dict)
        )
    }
    offered = list(full)
    called: dict[str, int] = {}
    for i, m in enumerate(messages):
        if m.get("role") == "assistant":
            for name in _called(m):
                called.setdefault(_base(name), i)
    last_obs = None
    if called:
        last_obs = _observation(messages, max(called.values()))
    transfer = next((t for t in offered if t.startswith("transfer_to_")), None)
    handed = None if "lookup_policy" in called else _handed_over(messages)
    if _looks_caught(last_obs):
        return _answer(full, f"{_SORRY}{last_obs}")
    if handed and handed.startswith(_SORRY) and not called:
        return _answer(full, handed)
    if transfer and "lookup_policy" not in offered and transfer not in called:
        return _call(full[transfer], {})
    if "lookup_policy" in offered and "lookup_policy" not in called:
        return _call(full["lookup_policy"], {"claim_id": "C-7"})
    if "compute_payout" in offered and "compute_payout" not in called:
        policy = None
        if "lookup_policy" in called:
            policy = _observation(messages, called["lookup_policy"])
        else:
            policy = handed
        return _call(full["compute_payout"], {"policy": policy or ""})
    return _answer(full, f"{_SETTLED}{last_obs or ''}".strip())


_FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]")
_OUTPUT_FIELD = re.compile(r"^\d+\. `(\w+)`", re.M)
_LISTED_TOOL = re.compile(r"\(\d+\) (\w+), whose description is")


def _fields(text: str) -> list[tuple[str, str]]:
    """``[[ ## name ## ]]`` sections of a text, in order, with their stripped values."""
    marks = list(_FIELD.finditer(text))
    return [
        (m.group(1), text[m.end() : marks[i + 1].start() if i + 1 < len(marks) else None].strip())
        for i, m in enumerate(marks)
    ]


def _field_protocol(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]] | None:
    """A prompt in the named-field text protocol, read as a chat with tools: the tools its
    instructions list, the calls and observations of its trajectory; and the output fields
    it asks for. None for any other prompt."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    system = "\n".join(_text(m.get("content")) for m in messages if m.get("role") == "system")
    if "[[ ## completed ## ]]" not in system or body.get("tools"):
        return None
    head, _, _ = system.partition("All interactions will be structured")
    outputs = _OUTPUT_FIELD.findall(head.partition("Your output fields are:")[2])
    offered = [t for t in _LISTED_TOOL.findall(system) if t != "finish"]
    user = next(
        (_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
    )
    user = user.partition("\n\nRespond with the corresponding output fields")[0]
    chat: list[dict[str, Any]] = []
    pending: dict[str, str] = {}
    for name, value in _fields(user):
        kind, _, _ = name.rpartition("_")
        if name == "question":
            chat.append({"role": "user", "content": value})
        elif kind == "tool_name":
            pending = {"name": value}
        elif kind == "tool_args":
            pending["arguments"] = value
        elif kind == "observation" and pending.get("name", "finish") != "finish":
            call = {"type": "function", "function": pending}
            chat.append({"role": "assistant", "content": None, "tool_calls": [call]})
            chat.append({"role": "tool", "content": value})
            pending = {}
    tools = [{"type": "function", "function": {"name": t}} for t in offered]
    return {"messages": chat, "tools": tools}, outputs


def _as_fields(message: dict[str, Any], outputs: list[str]) -> dict[str, Any]:
    """A decided assistant message written as the output fields asked for: a tool call as
    ``next_tool_name`` / ``next_tool_args`` (``finish`` for an answer), an answer as the last
    field."""
    calls = message.get("tool_calls") or []
    fn = calls[0]["function"] if calls else {"name": "finish", "arguments": "{}"}
    answer = str(message.get("content") or "")
    values = {
        "next_thought": f"Next: {fn['name']}.",
        "next_tool_name": fn["name"],
        "next_tool_args": fn["arguments"],
    }
    text = ""
    for i, name in enumerate(outputs):
        value = values.get(name, answer if i == len(outputs) - 1 else "From the trajectory.")
        text += f"[[ ## {name} ## ]]\n{value}\n\n"
    return {"role": "assistant", "content": text + "[[ ## completed ## ]]"}


def reply(body: dict[str, Any]) -> dict[str, Any]:
    """The assistant message answering ``body``, in the protocol it was asked in."""
    protocol = _field_protocol(body)
    if protocol is None:
        return decide(body)
    return _as_fields(decide(protocol[0]), protocol[1])


def _call(name: str, args: dict[str, Any]) -> dict[str, Any]:
    global _calls
    with _lock:
        _calls += 1
        n = _calls
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": f"call_{name}_{n}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
        ],
    }


def _answer(offered: dict[str, str], text: str) -> dict[str, Any]:
    if "final_answer" in offered:
        return _call(offered["final_answer"], {"answer": text})
    return {"role": "assistant", "content": text}


def _usage(body: dict[str, Any]) -> dict[str, int]:
    global _tokens
    prompt = 40 + len(json.dumps(body.get("messages") or [])) // 40
    with _lock:
        _tokens += prompt + 12
    return {"prompt_tokens": prompt, "completion_tokens": 12, "total_tokens": prompt + 12}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        message = reply(body)
        usage = _usage(body)
        model = str(body.get("model") or "gpt-4o-mini")
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        if body.get("stream"):
            self._stream(model, message, finish, usage)
            return
        self._send(
            200,
            {
                "id": f"chatcmpl-{time.time_ns()}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "finish_reason": finish, "message": message}],
                "usage": usage,
            },
        )

    def _send(self, code: int, doc: dict[str, Any]) -> None:
        data = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(
        self, model: str, message: dict[str, Any], finish: str, usage: dict[str, int]
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        base = {
            "id": f"chatcmpl-{time.time_ns()}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        delta: dict[str, Any] = {"role": "assistant"}
        if message.get("content"):
            delta["content"] = message["content"]
        if message.get("tool_calls"):
            delta["tool_calls"] = [dict(c, index=i) for i, c in enumerate(message["tool_calls"])]
        chunks = [
            {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]},
            {**base, "choices": [], "usage": usage},
        ]
        for c in chunks:
            self.wfile.write(f"data: {json.dumps(c)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serve(port: int = 0) -> Iterator[str]:
    """Serve on 127.0.0.1; yields the base URL (``http://127.0.0.1:PORT/v1``)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()


if __name__ == "__main__":
    with serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0) as url:
        print(url, flush=True)
        threading.Event().wait()
