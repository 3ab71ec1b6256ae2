"""Automatic and declared lineage edges, end to end through the SDK."""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flightlog


def edges_of(store, run_id):  # type: ignore[no-untyped-def]
    flightlog.flush()
    rec = store.get_record(run_id)
    by_id = {s.id: s.name for s in rec.steps}
    return {(by_id[e.source], by_id[e.target], e.evidence) for e in rec.edges}


@flightlog.step(kind="tool")
def produce(tag: str) -> dict[str, object]:
    return {"tag": tag, "items": [f"{tag}-alpha", f"{tag}-beta"]}


@flightlog.step(kind="tool")
def consume(value: object) -> int:
    return 1


@flightlog.step(kind="llm")
def prompt(text: str) -> str:
    return "ok"


def test_identity_edge(store) -> None:  # type: ignore[no-untyped-def]
    with flightlog.run("wf") as run:
        consume(produce("a"))
    assert edges_of(store, run.id) == {("produce", "consume", "identity")}


def test_identity_inside_containers(store) -> None:  # type: ignore[no-untyped-def]
    with flightlog.run("wf") as run:
        out = produce("a")
        consume([1, out])
    assert ("produce", "consume", "identity") in edges_of(store, run.id)


def test_equal_content_edge(store) -> None:  # type: ignore[no-untyped-def]
    with flightlog.run("wf") as run:
        out = produce("a")
        consume(copy.deepcopy(out))  # a copy: not the same object, same content
    assert edges_of(store, run.id) == {("produce", "consume", "content")}


def test_content_nested_in_argument(store) -> None:  # type: ignore[no-untyped-def]
    with flightlog.run("wf") as run:
        out = produce("abc")
        consume({"wrapped": {"tag": out["tag"], "items": list(out["items"])}})
    assert ("produce", "consume", "content") in edges_of(store, run.id)


def test_substring_edge_for_templated_prompts(store) -> None:  # type: ignore[no-untyped-def]
    @flightlog.step(kind="tool")
    def fetch() -> str:
        return "The policy covers sudden escape of water."

    with flightlog.run("wf") as run:
        doc = fetch()
        prompt(f"Context:\n{doc[:]}\nQuestion: covered?")
    assert ("fetch", "prompt", "substring") in edges_of(store, run.id)


def test_short_outputs_make_no_substring_edge(store) -> None:  # type: ignore[no-untyped-def]
    @flightlog.step(kind="tool")
    def short() -> str:
        return "yes"

    with flightlog.run("wf") as run:
        short()
        prompt("yes, this prompt contains yes")
    assert edges_of(store, run.id) == set()


def test_declared_edge(store) -> None:  # type: ignore[no-untyped-def]
    @flightlog.step(kind="tool")
    def writer() -> None:
        ids.append(flightlog.current_step().id)  # type: ignore[union-attr]

    @flightlog.step(kind="tool")
    def reader() -> None:
        flightlog.edge(ids[0], kind="handoff")

    ids: list[str] = []
    with flightlog.run("wf") as run:
        writer()
        reader()
    assert edges_of(store, run.id) == {("writer", "reader", "declared")}


def test_a_step_declared_to_feed_itself_is_refused(store, caplog) -> None:  # type: ignore[no-untyped-def]
    """edge(current_step().id) inside that step recorded "2 block -> 2 block"."""

    @flightlog.step(kind="tool")
    def block() -> None:
        flightlog.edge(flightlog.current_step().id)  # type: ignore[union-attr]

    with flightlog.run("wf") as run:
        block()
    assert edges_of(store, run.id) == set()
    assert "a step cannot feed itself" in caplog.text


def test_unrelated_steps_have_no_edges(store) -> None:  # type: ignore[no-untyped-def]
    with flightlog.run("wf") as run:
        produce("one")
        consume({"something": "else entirely"})
    assert edges_of(store, run.id) == set()


@given(
    text=st.text(
        alphabet=st.characters(min_codepoint=48, max_codepoint=122), min_size=16, max_size=80
    ),
    prefix=st.text(max_size=20),
    suffix=st.text(max_size=20),
)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_property_output_embedded_in_later_input_is_linked(
    store, text: str, prefix: str, suffix: str
) -> None:  # type: ignore[no-untyped-def]
    @flightlog.step(kind="tool")
    def source() -> str:
        return text

    with flightlog.run("wf") as run:
        out = source()
        prompt(prefix + "".join(out) + suffix)  # a new string object
    edges = edges_of(store, run.id)
    assert len(edges) == 1
    ((src, dst, evidence),) = edges
    assert (src, dst) == ("source", "prompt")
    assert evidence in ("substring", "content", "identity")


@given(st.lists(st.integers(0, 3), min_size=1, max_size=6))
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_property_edges_point_backwards_to_the_producer(store, picks: list[int]) -> None:  # type: ignore[no-untyped-def]
    @flightlog.step(kind="tool")
    def make(i: int) -> dict[str, str]:
        return {"value": f"payload-number-{i}-xxxxxxxx"}

    with flightlog.run("wf") as run:
        outs = [make(i) for i in range(4)]
        for p in picks:
            consume(outs[p])
    flightlog.flush()
    rec = store.get_record(run.id)
    index = {s.id: s for s in rec.steps}
    assert len(rec.edges) == len(picks)
    for e in rec.edges:
        src, dst = index[e.source], index[e.target]
        assert src.name == "make" and dst.name == "consume" and src.index < dst.index
