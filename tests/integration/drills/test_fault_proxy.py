"""The fault proxy with the real ``openai`` client, in front of a local OpenAI-compatible
endpoint on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import pytest

from flightlog.drills import Fault
from flightlog.drills.proxy import FaultProxy, parse_fault_args
from flightlog.errors import ConfigurationError

ANSWER = '{"covered": true, "clause": "W-1", "rationale": "burst pipe is covered"}'


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            req = json.loads(self.rfile.read(length))
            body = json.dumps(
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "created": 1,
                    "model": req["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": ANSWER},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def ask(proxy: FaultProxy) -> Any:
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="sk-test", max_retries=0)
    return client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "is it covered?"}]
    )


def test_passes_through_without_faults(upstream: str) -> None:
    with FaultProxy(upstream, []) as proxy:
        out = ask(proxy)
    assert out.choices[0].message.content == ANSWER
    assert out.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("rate_limit", openai.RateLimitError),
        ("exception", openai.InternalServerError),
        ("latency", openai.APIStatusError),
    ],
)
def test_errors_at_the_llm_boundary(upstream: str, kind: str, error: type[Exception]) -> None:
    params = {"seconds": 0} if kind == "latency" else {"retry_after": 9}
    with (
        FaultProxy(upstream, [Fault("llm", kind, params=params)]) as proxy,
        pytest.raises(error) as exc,
    ):
        ask(proxy)
    response = exc.value.response  # type: ignore[attr-defined]
    assert response.headers["x-flightlog-fault"] == kind
    if kind == "rate_limit":
        assert response.status_code == 429 and response.headers["retry-after"] == "9"
    if kind == "latency":
        assert response.status_code == 504


def test_altered_answers(upstream: str) -> None:
    def content(kind: str, **params: Any) -> Any:
        with FaultProxy(upstream, [Fault("llm", kind, params=params)]) as proxy:
            return ask(proxy).choices[0]

    assert content("empty").message.content == ""
    cut = content("truncate", keep=0.5)
    assert cut.finish_reason == "length" and len(cut.message.content) == len(ANSWER) // 2
    with pytest.raises(ValueError):
        json.loads(content("malformed_json").message.content)
    assert "IGNORE ALL PREVIOUS INSTRUCTIONS" in content("injection").message.content
    assert "covered" not in json.loads(content("missing_field", field="covered").message.content)
    assert (
        json.loads(content("corrupt_field", field="clause", value="W-999").message.content)[
            "clause"
        ]
        == "W-999"
    )


def test_probability_is_seeded(upstream: str) -> None:
    def pattern() -> list[str]:
        with FaultProxy(upstream, parse_fault_args(["empty:0.5"]), seed=4) as proxy:
            return [ask(proxy).choices[0].message.content for _ in range(12)]

    first = pattern()
    assert first == pattern() and "" in first and ANSWER in first
    with pytest.raises(ConfigurationError):
        parse_fault_args(["custom"])


def test_proxy_command_line_mistakes_are_one_line_errors() -> None:
    """--listen with a port out of range crashed with OverflowError; a taken port with
    OSError; an --upstream that is no URL was accepted."""
    import socket

    from tests.conftest import run_cli

    p = run_cli("drill", "--proxy", "--upstream", "http://127.0.0.1:9", "--listen", ":99999")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "--listen ':99999' is not HOST:PORT" in p.stderr
    p = run_cli("drill", "--proxy", "--upstream", "api.openai.com")
    assert p.returncode == 2 and "--upstream 'api.openai.com' is not a URL" in p.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        where = f"127.0.0.1:{taken.getsockname()[1]}"
        p = run_cli("drill", "--proxy", "--upstream", "http://127.0.0.1:9", "--listen", where)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert f"cannot listen on {where}: " in p.stderr and "choose another --listen" in p.stderr
