"""The run-end worker switches Python's cyclic collector off for a batch, and on again."""

from __future__ import annotations

import gc

import pytest

from flightlog.server.runend_worker import _batch_without_gc


def test_collector_off_during_a_batch_and_on_after() -> None:
    assert gc.isenabled()
    with _batch_without_gc():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_collector_on_again_after_a_batch_that_raised() -> None:
    with pytest.raises(RuntimeError), _batch_without_gc():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_collector_left_off_when_it_was_off() -> None:
    gc.disable()
    try:
        with _batch_without_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_cycles_made_during_a_batch_are_freed_after_it() -> None:
    class Node:
        pass

    with _batch_without_gc():
        a, b = Node(), Node()
        a.other, b.other = b, a  # type: ignore[attr-defined]
        del a, b
        alive = sum(isinstance(o, Node) for o in gc.get_objects())
        assert alive == 2  # not collected while the batch runs
    gc.collect(0)
    assert not any(isinstance(o, Node) for o in gc.get_objects())
