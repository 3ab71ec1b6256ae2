"""The LLM judge plug-in against a fake OpenAI-compatible endpoint on loopback: ranking the
rules' candidates, the paper's three protocols, caching, the token budget and malformed
replies. The fake is checked with the real ``openai`` client first."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from flightlog.forensics import why
from flightlog.forensics.conversation import attribute_messages, read_messages
from flightlog.forensics.judge import (
    Judge,
    JudgeSettings,
    judge_attribution,
    parse_half,
    parse_reply,
    parse_yes_no,
    settings_from_config,
)
from flightlog.forensics.transcripts import transcript_batch

LOG = Path(__file__).resolve().parents[2] / "data" / "whowhen" / "Algorithm-Generated" / "3.json"


class FakeEndpoint:
    """A chat-completions endpoint that answers from a script (a list of replies: a string
    is the message content, an int an HTTP status, bytes a raw body)."""

    def __init__(self) -> None:
        self.script: list[Any] = []
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(
                    {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
                )
                reply = outer.script.pop(0) if outer.script else "no idea"
                if isinstance(reply, int):
                    self.send_response(reply)
                    self.end_headers()
                    return
                if isinstance(reply, bytes):
                    data = reply
                else:
                    data = json.dumps(
                        {
                            "id": "x",
                            "object": "chat.completion",
                            "created": 0,
                            "model": body["model"],
                            "choices": [
                                {
                                    "index": 0,
                                    "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": reply},
                                }
                            ],
                            "usage": {
                                "prompt_tokens": 100,
                                "completion_tokens": 10,
                                "total_tokens": 110,
                            },
                        }
                    ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[FakeEndpoint]:
    fake = FakeEndpoint()
    yield fake
    fake.close()


def _settings(endpoint: FakeEndpoint, tmp_path: Path, **kw: Any) -> JudgeSettings:
    kw.setdefault("cache_dir", str(tmp_path / "cache"))
    return JudgeSettings(url=endpoint.url, model="fake-model", api_key="k", **kw)


def _conversation() -> list[Any]:
    return read_messages(
        [
            {"name": "Planner", "role": "user", "content": "# Task\nCount rows."},
            {"name": "Analyst", "role": "user", "content": "I assume there are 7 rows."},
            {"name": "Coder", "role": "user", "content": "```python\nprint(rows)\n```"},
            {
                "name": "Computer_terminal",
                "role": "user",
                "content": "exitcode: 1 (execution failed)\nCode output: NameError",
            },
            {"name": "Checker", "role": "user", "content": "The answer is 7. TERMINATE"},
        ]
    )


def test_the_fake_endpoint_speaks_openai(endpoint: FakeEndpoint) -> None:
    import openai

    endpoint.script = ["hello"]
    client = openai.OpenAI(base_url=endpoint.url, api_key="k", max_retries=0)
    out = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert out.choices[0].message.content == "hello" and out.usage is not None
    assert endpoint.requests[0]["path"] == "/v1/chat/completions"


def test_candidates_mode_ranks_only_the_candidates_and_caches(
    endpoint: FakeEndpoint, tmp_path: Path
) -> None:
    msgs = _conversation()
    verdict = attribute_messages(msgs)
    assert verdict.best is not None and verdict.best.index == 2
    endpoint.script = ['Sure!\n```json\n{"message": 1, "reason": "an assumption"}\n```']
    judge = Judge(_settings(endpoint, tmp_path))
    ruling = judge.judge(msgs, verdict, "Count rows.")
    assert (ruling.index, ruling.agent, ruling.reason) == (1, "Analyst", "an assumption")
    assert (ruling.calls, ruling.prompt_tokens, ruling.completion_tokens) == (1, 100, 10)
    prompt = endpoint.requests[0]["body"]["messages"][1]["content"]
    assert "[message 2] Coder" in prompt and "<one of [2, 1, 4]>" in prompt  # candidates only
    assert endpoint.requests[0]["auth"] == "Bearer k"
    again = judge.judge(msgs, verdict, "Count rows.")  # cached: no second request
    assert again.index == 1 and again.cached_calls == 1 and len(endpoint.requests) == 1
    judge.close()


@pytest.mark.parametrize(
    "reply",
    [
        "I cannot tell.",
        '{"message": 3}',
        '{"message": "many"}',
        500,
        b"not json at all",
        b'{"choices": []}',
    ],
)
def test_malformed_replies_leave_the_rules_answer(
    endpoint: FakeEndpoint, tmp_path: Path, reply: Any
) -> None:
    msgs = _conversation()
    endpoint.script = [reply]
    judge = Judge(_settings(endpoint, tmp_path, cache_dir=None))
    ruling = judge.judge(msgs, attribute_messages(msgs), None)
    judge.close()
    assert ruling.index is None and ruling.problems


def test_budget_bounds_the_cost(endpoint: FakeEndpoint, tmp_path: Path) -> None:
    msgs = _conversation()
    judge = Judge(_settings(endpoint, tmp_path, mode="step-by-step", budget_tokens=50))
    ruling = judge.judge(msgs, attribute_messages(msgs), None)
    judge.close()
    assert ruling.index is None and "budget" in ruling.problems[0] and not endpoint.requests


def test_paper_protocols(endpoint: FakeEndpoint, tmp_path: Path) -> None:
    msgs = _conversation()
    verdict = attribute_messages(msgs)
    endpoint.script = ['{"message": 2, "reason": "bad code"}']
    j = Judge(_settings(endpoint, tmp_path, mode="all-at-once", cache_dir=None))
    assert j.judge(msgs, verdict, None).index == 2
    endpoint.script = ['{"mistake": false}', 'Yes, {"mistake": true, "reason": "guess"}']
    j = Judge(_settings(endpoint, tmp_path, mode="step-by-step", cache_dir=None))
    r = j.judge(msgs, verdict, None)
    assert r.index == 1 and r.calls == 2  # the task message (0) is asked about too
    endpoint.script = ['{"half": "first"}', "the second half", '{"half": "second"}']
    j = Judge(_settings(endpoint, tmp_path, mode="binary-search", cache_dir=None))
    assert j.judge(msgs, verdict, None).index == 2  # 0-4, then 0-2, then 2
    j.close()


def test_reply_parsers() -> None:
    assert parse_reply('{"step": "3", "reason": "x"}') == (3, "x")
    assert parse_reply("The decisive mistake is message 5.") == (5, "")
    assert parse_reply("nothing") == (None, "")
    assert parse_yes_no("No.") == (False, "")
    assert parse_yes_no('{"answer": "yes"}') == (True, "")
    assert parse_half("second") == "second" and parse_half("first or second") is None


def test_off_by_default_and_configured_by_environment(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    assert settings_from_config(environ={}) is None
    env = {
        "FLIGHTLOG__JUDGE__URL": "http://127.0.0.1:1/v1",
        "FLIGHTLOG__JUDGE__MODEL": "m",
        "FLIGHTLOG_JUDGE_API_KEY": "secret",
    }
    s = settings_from_config(environ=env, force=True)
    assert s is not None and s.api_key == "secret" and s.mode == "candidates"
    assert settings_from_config(environ={**env, "FLIGHTLOG__JUDGE__ENABLED": "true"}) == s


def test_why_with_the_judge(endpoint: FakeEndpoint, tmp_path: Path, store: Any) -> None:
    data = json.loads(LOG.read_text())
    batch = transcript_batch(data, workflow="ww", key="3.json")
    store.write(batch)
    att = why(store, batch.runs[0].id)
    second = att.alternatives[0]["step"]["index"] - 1  # the rules' second candidate
    endpoint.script = [json.dumps({"message": second, "reason": "an unverified assumption"})]
    judged = judge_attribution(store, att, _settings(endpoint, tmp_path))
    assert judged.root_cause is not None and att.root_cause is not None
    assert judged.root_cause.index - 1 == second != att.root_cause.index - 1
    assert judged.hypothesis and judged.cause == "an unverified assumption"
    assert "LLM judge (fake-model, candidates)" in judged.evidence[-1]
    assert "100 prompt + 10 completion tokens" in judged.evidence[-1]
    assert judged.method.startswith("conversation + LLM judge")


def test_why_judge_on_the_command_line(endpoint: FakeEndpoint, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    db = f"sqlite:///{tmp_path / 'j.db'}"
    env = {**os.environ, "FLIGHTLOG_CONFIG": ""}
    env.pop("FLIGHTLOG_CONFIG")

    def cli(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flightlog", *args, "--db", db],
            capture_output=True,
            text=True,
            env={**env, **extra},
            cwd=tmp_path,
            timeout=120,
        )

    rid = json.loads(cli("import", str(LOG), "--json").stdout)[0]["run_id"]
    p = cli("why", rid, "--judge")
    assert p.returncode == 1 and p.stderr.startswith("error: the judge needs [judge] url")
    endpoint.script = ['{"message": 2, "reason": "wrong code"}']
    p = cli(
        "why",
        rid,
        "--judge",
        "--json",
        FLIGHTLOG__JUDGE__URL=endpoint.url,
        FLIGHTLOG__JUDGE__MODEL="fake-model",
        FLIGHTLOG__JUDGE__CACHE_DIR=str(tmp_path / "cache"),
    )
    assert p.returncode == 0, p.stderr
    att = json.loads(p.stdout)
    assert att["root_cause"]["index"] == 3 and "LLM judge" in att["method"]
    assert len(endpoint.requests) == 1


def test_enabled_in_the_configuration_file(endpoint: FakeEndpoint, tmp_path: Path) -> None:
    import subprocess
    import sys

    db = f"sqlite:///{tmp_path / 'e.db'}"
    (tmp_path / "flightlog.toml").write_text(
        f'[judge]\nenabled = true\nurl = "{endpoint.url}"\nmodel = "fake-model"\n'
        f'cache_dir = "{tmp_path / "cache"}"\nbudget_tokens = 5000\n'
    )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flightlog", *args, "--db", db],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
        )

    rid = json.loads(cli("import", str(LOG), "--json").stdout)[0]["run_id"]
    endpoint.script = ["I am not sure."]  # unusable: the rules' answer stands, and says so
    p = cli("why", rid)
    assert p.returncode == 0, p.stderr
    assert "gave no usable answer" in p.stdout and "the rules' answer stands" in p.stdout
    assert len(endpoint.requests) == 1
