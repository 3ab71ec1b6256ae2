"""RFC 9162 hashing and proofs: the transparency-dev/merkle vectors and hypothesis properties."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flightlog.errors import LedgerError
from flightlog.ledger import rfc9162


def _testdata() -> Path:
    """The transparency-dev/merkle vectors shipped in tests/data/merkle (see its README)."""
    return Path(__file__).resolve().parents[2] / "data" / "merkle"


VECTORS = sorted(_testdata().glob("**/*.json"))


def _b(x: str | None) -> bytes:
    return base64.b64decode(x) if x is not None else b""


def test_vectors_are_present() -> None:
    assert len(VECTORS) > 150
    assert any(json.loads(p.read_text())["wantErr"] for p in VECTORS)


@pytest.mark.parametrize(
    "path", VECTORS, ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}/{p.stem}"
)
def test_vector(path: Path) -> None:
    d = json.loads(path.read_text())
    proof = [_b(p) for p in (d["proof"] or [])]

    def check() -> None:
        if "leafIdx" in d:
            rfc9162.verify_inclusion(
                d["leafIdx"], d["treeSize"], _b(d["leafHash"]), proof, _b(d["root"])
            )
        else:
            rfc9162.verify_consistency(
                d["size1"], d["size2"], _b(d["root1"]), _b(d["root2"]), proof
            )

    if d["wantErr"]:
        with pytest.raises(LedgerError):
            check()
    else:
        check()


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 MTH, written recursively as in the RFC (the reference)."""
    n = len(leaves)
    if n == 0:
        return rfc9162.EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = 1 << ((n - 1).bit_length() - 1)
    return rfc9162.node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


class _Tree:
    def __init__(self, n: int) -> None:
        self.leaves = [rfc9162.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]

    def fetch(self, keys: set[rfc9162.NodeKey]) -> dict[rfc9162.NodeKey, bytes]:
        return {(lvl, i): _mth(self.leaves[i << lvl : (i + 1) << lvl]) for lvl, i in keys}


def test_rfc_example_tree_roots_match_reference() -> None:
    # The RFC's recursive definition and the iterative frontier agree for every size.
    for n in range(0, 70):
        t = _Tree(n)
        assert rfc9162.root_from_leaves(t.leaves) == _mth(t.leaves)


sizes = st.integers(min_value=1, max_value=4096)


@settings(max_examples=60, deadline=None)
@given(size=sizes, data=st.data())
def test_inclusion_proofs_verify_and_bit_flips_fail(size: int, data: st.DataObject) -> None:
    t = _Tree(size)
    root = rfc9162.root_from_leaves(t.leaves)
    index = data.draw(st.integers(0, size - 1))
    proof = rfc9162.inclusion_proof(index, size, t.fetch)
    rfc9162.verify_inclusion(index, size, t.leaves[index], proof, root)

    bit = data.draw(st.integers(0, 255))
    flipped_root = bytearray(root)
    flipped_root[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(LedgerError):
        rfc9162.verify_inclusion(index, size, t.leaves[index], proof, bytes(flipped_root))
    if proof:
        which = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        h = bytearray(bad[which])
        h[bit // 8] ^= 1 << (bit % 8)
        bad[which] = bytes(h)
        with pytest.raises(LedgerError):
            rfc9162.verify_inclusion(index, size, t.leaves[index], bad, root)
    # A different index fails. A different size fails whenever it changes the proof's
    # shape; sizes whose paths coincide (index 0 in sizes 5 and 7) are told apart by the
    # signed checkpoint, whose size bits are covered by the signature (test_ledger_note).
    flip = 1 << data.draw(st.integers(0, 12))
    with pytest.raises(LedgerError):
        rfc9162.verify_inclusion(index ^ flip, size, t.leaves[index], proof, root)
    other = size ^ flip
    if other <= index or len(rfc9162.inclusion_ranges(index, other)) != len(proof):
        with pytest.raises(LedgerError):
            rfc9162.verify_inclusion(index, other, t.leaves[index], proof, root)


@settings(max_examples=60, deadline=None)
@given(size2=sizes, data=st.data())
def test_consistency_proofs_verify_and_bit_flips_fail(size2: int, data: st.DataObject) -> None:
    t = _Tree(size2)
    size1 = data.draw(st.integers(1, size2))
    root1 = _mth(t.leaves[:size1])
    root2 = _mth(t.leaves)
    proof = rfc9162.consistency_proof(size1, size2, t.fetch)
    rfc9162.verify_consistency(size1, size2, root1, root2, proof)

    bit = data.draw(st.integers(0, 255))

    def flipped(h: bytes) -> bytes:
        b = bytearray(h)
        b[bit // 8] ^= 1 << (bit % 8)
        return bytes(b)

    if size1 == size2:
        with pytest.raises(LedgerError):
            rfc9162.verify_consistency(size1, size2, root1, flipped(root2), proof)
        return
    with pytest.raises(LedgerError):
        rfc9162.verify_consistency(size1, size2, flipped(root1), root2, proof)
    with pytest.raises(LedgerError):
        rfc9162.verify_consistency(size1, size2, root1, flipped(root2), proof)
    which = data.draw(st.integers(0, len(proof) - 1))
    bad = list(proof)
    bad[which] = flipped(bad[which])
    with pytest.raises(LedgerError):
        rfc9162.verify_consistency(size1, size2, root1, root2, bad)
    flip = 1 << data.draw(st.integers(0, 12))
    for s1, s2 in ((size1 ^ flip, size2), (size1, size2 ^ flip)):
        if not 0 < s1 < s2 or len(rfc9162.consistency_ranges(s1, s2)) != len(proof):
            with pytest.raises(LedgerError):
                rfc9162.verify_consistency(s1, s2, root1, root2, proof)


def test_index_beyond_size_is_rejected_with_a_clear_message() -> None:
    with pytest.raises(LedgerError, match="beyond tree size"):
        rfc9162.verify_inclusion(5, 5, b"\0" * 32, [], b"\0" * 32)
    with pytest.raises(LedgerError, match="outside a tree"):
        rfc9162.inclusion_ranges(5, 5)
