"""The tree extension of ``Ledger._extend`` (``log._extend_tree``): a batch of leaves
appended level by level gives the root, right frontier and stored interior hashes of the
RFC 9162 tree over all leaves, whatever the batch boundaries."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from flightlog.ledger import rfc9162
from flightlog.ledger.log import _extend_tree
from flightlog.ledger.schema import MIN_STORED_LEVEL, NODE_SHIFT


def _leaf(i: int) -> bytes:
    return hashlib.sha256(b"\x00" + str(i).encode()).digest()


def _subtree(leaves: list[bytes], level: int, index: int) -> bytes:
    return rfc9162.root_from_leaves(leaves[index << level : (index + 1) << level])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 70), min_size=1, max_size=8))
def test_batches_give_the_tree_of_all_leaves(batches: list[int]) -> None:
    leaves: list[bytes] = []
    frontier: list[bytes | None] = []
    stored: dict[int, bytes] = {}
    for count in batches:
        size = len(leaves)
        new = [_leaf(size + k) for k in range(count)]
        frontier, nodes = _extend_tree(frontier, size, new)
        leaves += new
        pairs = dict(zip(nodes[::2], nodes[1::2], strict=True))
        assert not pairs.keys() & stored.keys()  # each interior hash stored once
        stored.update(pairs)
        n = len(leaves)
        assert rfc9162.frontier_root(frontier) == rfc9162.root_from_leaves(leaves)
        expect = {lvl: _subtree(leaves, lvl, i) for lvl, i in rfc9162.frontier_keys(n)}
        assert {lvl: h for lvl, h in enumerate(frontier) if h is not None} == expect
    n = len(leaves)
    complete = {
        lvl << NODE_SHIFT | i
        for lvl in range(MIN_STORED_LEVEL, n.bit_length())
        for i in range(n >> lvl)
    }
    assert stored.keys() == complete
    mask = (1 << NODE_SHIFT) - 1
    for nid, h in stored.items():
        assert h == _subtree(leaves, nid >> NODE_SHIFT, nid & mask)
