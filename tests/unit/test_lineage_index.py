"""``lineage.ContentIndex`` keeps at most ``MAX_HASHES`` content hashes and ``MAX_STRINGS``
output strings per run, the most recently produced ones, and ``nbytes`` tracks what it holds.
"""

from __future__ import annotations

import orjson

from flightlog import lineage
from flightlog.lineage import MAX_HASHES, MAX_STRINGS, ContentIndex


def _held(index: ContentIndex) -> int:
    return 96 * len(index.hashes) + sum(len(k) + 64 for k in index.strings)


def test_index_keeps_the_latest_outputs_and_counts_its_bytes() -> None:
    index = ContentIndex()
    first = orjson.dumps({"text": "the very first output string"})
    index.add_output("s0", first, 0)
    for i in range(1, MAX_HASHES + 10):
        out = orjson.dumps([f"output string number {i:06d}", i * 1_000_003])
        index.add_output(f"s{i}", out, i)
        if i == MAX_STRINGS // 2:  # produced again: now among the most recent
            index.add_output("again", first, i)
        assert index.nbytes == _held(index)
    assert len(index.hashes) == MAX_HASHES
    assert len(index.strings) == MAX_STRINGS
    # the oldest strings went first; the one produced again outlived older ones
    needles = list(index.strings)
    assert needles[-1] == f"output string number {MAX_HASHES + 9:06d}".encode()
    assert b"the very first output string" not in index.strings  # evicted since
    found = index.sources(
        orjson.dumps({"q": f"output string number {MAX_HASHES + 9:06d}"}), "x", 10**9
    )
    assert found == [(f"s{MAX_HASHES + 9}", "content", "q")]


def test_producing_a_string_again_moves_it_to_the_newest() -> None:
    index = ContentIndex()
    for i in range(MAX_STRINGS):
        index.add_output(f"s{i}", orjson.dumps(f"string produced by step {i:04d}"), i)
    index.add_output("late", orjson.dumps("string produced by step 0000"), 10**6)
    index.add_output("new", orjson.dumps("one more string to push out the oldest"), 10**6)
    assert len(index.strings) == MAX_STRINGS
    assert index.strings[b"string produced by step 0000"] == ("late", 10**6)
    assert b"string produced by step 0001" not in index.strings
    assert index.nbytes == _held(index)
    text = orjson.dumps({"p": "prefix string produced by step 0000 suffix"})
    assert index.sources(text, "x", 10**7) == [("late", "substring", "p")]
    assert len("string produced by step 0000") >= lineage.MIN_SUBSTRING
