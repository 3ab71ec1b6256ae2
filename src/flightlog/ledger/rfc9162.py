"""Merkle tree hashing and proofs, as specified by RFC 9162 §2.1 (same as RFC 6962 §2.1).

- leaf hash  = SHA-256(0x00 || entry)                       (§2.1.1)
- node hash  = SHA-256(0x01 || left || right)               (§2.1.1)
- MTH(D[n])  splits at k, the largest power of two smaller than n (§2.1.1)
- inclusion proofs: generation §2.1.3.1, verification §2.1.3.2
- consistency proofs: generation §2.1.4.1, verification §2.1.4.2

Proof *generation* is written over "ranges": every hash a proof needs is the root of a range
``[lo, hi)`` of leaves, and every such range decomposes into at most log2(n) complete,
aligned subtrees. A store keeps the hash of each complete subtree, so a proof costs
O(log n) reads (``nodes_for_*`` list what to read; ``*_from_nodes`` assemble the proof).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence

from flightlog.errors import LedgerError

HASH_SIZE = 32
_sha256 = hashlib.sha256

# A complete subtree of 2**level leaves starting at leaf index << level.
NodeKey = tuple[int, int]  # (level, index)


def leaf_hash(entry: bytes) -> bytes:
    """RFC 9162 §2.1.1: MTH({d(0)}) = SHA-256(0x00 || d(0))."""
    return _sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: SHA-256(0x01 || MTH(left) || MTH(right))."""
    return _sha256(b"\x01" + left + right).digest()


EMPTY_ROOT = _sha256(b"").digest()  # MTH({}) = SHA-256() (§2.1.1)


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaves(leaves: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes (iterative, O(n))."""
    if not leaves:
        return EMPTY_ROOT
    frontier: list[bytes | None] = []
    for i, h in enumerate(leaves):
        frontier = _push(frontier, i, h)
    return frontier_root(frontier)


def _push(frontier: list[bytes | None], index: int, h: bytes) -> list[bytes | None]:
    level = 0
    while index & 1:
        left = frontier[level]
        assert left is not None
        h = node_hash(left, h)
        frontier[level] = None
        level += 1
        index >>= 1
    if level == len(frontier):
        frontier.append(h)
    else:
        frontier[level] = h
    return frontier


def frontier_root(frontier: Sequence[bytes | None]) -> bytes:
    """The root of a tree from its right frontier: ``frontier[level]`` is the hash of the
    complete subtree of 2**level leaves pending at that level, or None (bit of n unset)."""
    root: bytes | None = None
    for h in frontier:
        if h is None:
            continue
        root = h if root is None else node_hash(h, root)
    return EMPTY_ROOT if root is None else root


def frontier_keys(size: int) -> list[NodeKey]:
    """The complete subtrees (level, index) on the right edge of a tree of ``size`` leaves."""
    keys: list[NodeKey] = []
    for level in range(size.bit_length()):
        if size >> level & 1:
            keys.append((level, (size >> level) - 1))
    return keys


# -- ranges --------------------------------------------------------------------------------
def range_nodes(lo: int, hi: int) -> list[NodeKey]:
    """Complete aligned subtrees covering ``[lo, hi)``, left to right (lo must be aligned as
    every range in RFC 9162's recursion is)."""
    keys: list[NodeKey] = []
    n = hi - lo
    while n > 0:
        level = n.bit_length() - 1
        keys.append((level, lo >> level))
        lo += 1 << level
        n -= 1 << level
    return keys


def range_root(lo: int, hi: int, nodes: Mapping[NodeKey, bytes]) -> bytes:
    keys = range_nodes(lo, hi)
    h = nodes[keys[-1]]
    for key in reversed(keys[:-1]):
        h = node_hash(nodes[key], h)
    return h


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n]) as the ranges whose roots form the proof, leaf's
    sibling first."""
    if not 0 <= index < size:
        raise LedgerError(f"leaf index {index} is outside a tree of size {size}")
    out: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo = lo + k
    out.reverse()
    return out


def consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """RFC 9162 §2.1.4.1 PROOF(m, D[n]) = SUBPROOF(m, D[n], true) as ranges."""
    if not 0 < size1 <= size2:
        raise LedgerError(
            f"no consistency proof from size {size1} to size {size2}; need 0 < size1 <= size2"
        )
    out: list[tuple[int, int]] = []
    lo, hi, m, complete = 0, size2, size1, True
    while True:
        n = hi - lo
        if m == n:
            if not complete:
                out.append((lo, hi))
            break
        k = _split(n)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    out.reverse()
    return out


def nodes_for(ranges: Iterable[tuple[int, int]]) -> set[NodeKey]:
    keys: set[NodeKey] = set()
    for lo, hi in ranges:
        keys.update(range_nodes(lo, hi))
    return keys


def proof_from_nodes(
    ranges: Sequence[tuple[int, int]], nodes: Mapping[NodeKey, bytes]
) -> list[bytes]:
    return [range_root(lo, hi, nodes) for lo, hi in ranges]


def inclusion_proof(
    index: int, size: int, fetch: Callable[[set[NodeKey]], Mapping[NodeKey, bytes]]
) -> list[bytes]:
    """The inclusion proof of leaf ``index`` in the tree of ``size``, reading node hashes
    through ``fetch`` (one batched call)."""
    ranges = inclusion_ranges(index, size)
    return proof_from_nodes(ranges, fetch(nodes_for(ranges)))


def consistency_proof(
    size1: int, size2: int, fetch: Callable[[set[NodeKey]], Mapping[NodeKey, bytes]]
) -> list[bytes]:
    """The consistency proof between trees of ``size1`` and ``size2`` (empty if equal)."""
    if size1 == size2:
        return []
    ranges = consistency_ranges(size1, size2)
    return proof_from_nodes(ranges, fetch(nodes_for(ranges)))


# -- verification ----------------------------------------------------------------------------
def _check_hash(name: str, h: bytes) -> None:
    if len(h) != HASH_SIZE:
        raise LedgerError(f"{name} is {len(h)} bytes; expected a {HASH_SIZE}-byte SHA-256 hash")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2: the root implied by an inclusion proof. Raises ``LedgerError``
    when the proof cannot be valid for any root."""
    if index < 0 or size < 0:
        raise LedgerError(f"negative index {index} or size {size}")
    if index >= size:
        raise LedgerError(f"leaf index {index} is beyond tree size {size}")
    _check_hash("leaf hash", leaf)
    fn, sn = index, size - 1
    r = leaf
    for i, p in enumerate(proof):
        _check_hash(f"proof hash {i}", p)
        if sn == 0:
            raise LedgerError(
                f"inclusion proof has {len(proof)} hashes; more than a tree of size {size} needs"
            )
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise LedgerError(
            f"inclusion proof has {len(proof)} hashes; too few for index {index} in size {size}"
        )
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise ``LedgerError`` unless ``proof`` proves leaf ``index`` in the tree ``root``."""
    _check_hash("root", root)
    got = root_from_inclusion(index, size, leaf, proof)
    if got != root:
        raise LedgerError(
            f"inclusion proof for leaf {index} in tree size {size} gives root "
            f"{got.hex()[:16]}…; expected {root.hex()[:16]}…"
        )


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2: raise ``LedgerError`` unless ``proof`` shows the tree ``root1`` of
    ``size1`` is a prefix of the tree ``root2`` of ``size2``."""
    if size1 < 0 or size2 < 0:
        raise LedgerError(f"negative tree size ({size1}, {size2})")
    if size2 < size1:
        raise LedgerError(f"tree size {size2} is smaller than the earlier size {size1}")
    for i, p in enumerate(proof):
        _check_hash(f"proof hash {i}", p)
    if size1 == 0:
        # As transparency-dev/merkle: every tree extends the empty tree, so a proof from
        # size 0 proves nothing; callers skip the check instead of asking for one.
        raise LedgerError("a consistency proof from the empty tree (size 0) proves nothing")
    if size1 == size2:
        if proof:
            raise LedgerError("consistency proof between equal sizes must be empty")
        if root1 != root2:
            raise LedgerError(f"two different roots for the same tree size {size1}")
        return
    if not proof:
        raise LedgerError(f"empty consistency proof from size {size1} to {size2}")
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # exact power of two: prepend first_hash (step 2)
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise LedgerError(
                f"consistency proof has {len(proof)} hashes; more than sizes {size1}->{size2} need"
            )
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise LedgerError(
            f"consistency proof has {len(proof)} hashes; too few for sizes {size1}->{size2}"
        )
    if fr != root1:
        raise LedgerError(f"consistency proof does not lead to the root of size {size1}")
    if sr != root2:
        raise LedgerError(f"consistency proof does not lead to the root of size {size2}")
