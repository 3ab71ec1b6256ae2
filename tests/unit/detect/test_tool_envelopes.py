"""Tool results recorded inside an envelope are judged by what they carry: a message
(LangChain's ToolMessage, a chat ``tool`` message) or a tool-result record that names the
tool and holds its raw output (LlamaIndex's ``ToolOutput``)."""

from __future__ import annotations

import orjson

from flightlog.detect.context import decode, unwrap

POLICY = '{"policy": "P-7", "limit": 5000}'


def test_a_llamaindex_tool_output_is_read_as_its_raw_output() -> None:
    envelope = {
        "blocks": [{"text": "[]"}],
        "tool_name": "lookup_policy",
        "raw_input": {"args": [], "kwargs": {"claim_id": "C-7"}},
        "raw_output": "[]",
        "is_error": False,
    }
    assert unwrap(envelope) == []
    assert decode(orjson.dumps({**envelope, "raw_output": POLICY})) == orjson.loads(POLICY)
    error = {**envelope, "raw_output": '{"error": "policy service unavailable", "code": 503}'}
    assert unwrap(error) == {"error": "policy service unavailable", "code": 503}


def test_an_older_tool_output_without_raw_output_is_read_as_its_content() -> None:
    assert unwrap({"tool_name": "search", "content": "no results", "raw_input": {}}) == (
        "no results"
    )


def test_a_record_holding_only_a_result_is_read_as_that_result() -> None:
    # Google ADK: a tool that returns anything but a dict is recorded as {"result": ...}
    assert unwrap({"result": "[]"}) == []
    assert decode(orjson.dumps({"result": POLICY})) == orjson.loads(POLICY)
    assert unwrap({"output": {"rows": 0}}) == {"rows": 0}
    truncated = POLICY[:20]
    assert unwrap({"result": truncated}) == truncated
    only_other = {"rows": []}
    assert unwrap(only_other) is only_other


def test_a_lone_text_part_or_genai_event_is_read_as_what_it_carries() -> None:
    assert unwrap([{"text": "[]"}]) == []
    assert unwrap([{"type": "text", "text": POLICY}]) == orjson.loads(POLICY)
    # Strands Agents: a tool span's payloads are its GenAI events
    choice = [{"event": "gen_ai.choice", "id": "call_1", "message": [{"text": "[]"}]}]
    assert unwrap(choice) == []
    call = [{"event": "gen_ai.tool.message", "role": "tool", "content": {"claim_id": "C-7"}}]
    assert unwrap(call) == {"claim_id": "C-7"}
    assert decode(orjson.dumps(choice)) == []
    # lists that are data, not wrappers, stay as they are
    two = [{"text": "a"}, {"text": "b"}]
    assert unwrap(two) is two
    record = [{"text": "a", "score": 0.3}]
    assert unwrap(record) is record
    image = [{"type": "image", "text": "alt"}]
    assert unwrap(image) is image
    other_event = [{"event": "custom", "message": "[]"}]
    assert unwrap(other_event) is other_event


def test_records_that_name_no_tool_or_carry_no_result_are_left_as_they_are() -> None:
    plain = {"result": "[]", "count": 0}  # an ordinary output with a "result" field
    assert unwrap(plain) is plain
    named = {"tool_name": "search", "latency_ms": 12}  # names a tool, carries no result
    assert unwrap(named) is named
    not_a_name = {"tool_name": 7, "raw_output": "[]"}
    assert unwrap(not_a_name) is not_a_name


def test_message_envelopes_still_unwrap() -> None:
    assert unwrap({"type": "tool", "data": {"content": "[]"}}) == []
    assert unwrap({"role": "tool", "content": POLICY}) == orjson.loads(POLICY)


def _tool_message(content: str) -> dict[str, object]:
    """A LangChain ToolMessage in LangChain's serialised form."""
    return {
        "lc": 1,
        "type": "constructor",
        "id": ["langchain", "schema", "messages", "ToolMessage"],
        "kwargs": {"content": content, "type": "tool", "tool_call_id": "call_1"},
    }


def test_a_serialised_langchain_object_is_read_as_what_it_holds() -> None:
    assert unwrap(_tool_message("[]")) == []
    assert decode(orjson.dumps(_tool_message(POLICY))) == orjson.loads(POLICY)
    # another serialised object: its constructor arguments
    human = {"lc": 1, "type": "constructor", "id": ["x", "Doc"], "kwargs": {"text": "hi"}}
    assert unwrap(human) == {"text": "hi"}
    # not the serialised form: no "lc", or kwargs that are no record
    no_lc = {"type": "constructor", "kwargs": {"content": "[]", "type": "tool"}}
    assert unwrap(no_lc) is no_lc
    not_a_record = {"lc": 1, "type": "constructor", "kwargs": "[]"}
    assert unwrap(not_a_record) is not_a_record


def test_a_callback_result_beside_the_call_context_is_read_as_the_result() -> None:
    # OpenLLMetry's LangChain tool callback: {"output": <ToolMessage>, "kwargs": {...}}
    recorded = {"output": _tool_message("[]"), "kwargs": {"tags": ["seq:step:1"], "name": "x"}}
    assert unwrap(recorded) == []
    assert unwrap({"outputs": {"rows": 0}, "kwargs": {}, "tags": []}) == {"rows": 0}
    truncated = POLICY[:20]
    assert unwrap({"output": truncated, "metadata": {}}) == truncated
    # a result beside anything but call context is data, left as it is
    data = {"output": "[]", "kwargs": {}, "count": 0}
    assert unwrap(data) is data
    both = {"output": "a", "outputs": "b", "kwargs": {}}
    assert unwrap(both) is both


def test_nested_wrappers_unwrap_a_bounded_number_of_times() -> None:
    value: object = "[]"
    for _ in range(3):
        value = {"output": value, "kwargs": {}}
    assert unwrap(value) == []
    deep: object = {"rows": 0}
    for _ in range(2000):  # deeper than the recursion limit: never a RecursionError
        deep = {"output": deep, "kwargs": {}}
    assert isinstance(unwrap(deep), dict)
