"""The spectrum cache is owned by the store object and bounded (issue 14: no process-global
caches keyed by ``id()``)."""

from __future__ import annotations

import gc

from flightlog.app import open_store
from flightlog.forensics import spectrum


def test_cache_is_bounded_per_store_and_least_recent_goes_first(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        with spectrum._cache_lock:
            for n in range(spectrum.CACHED_WORKFLOWS + 10):
                spectrum._remember(store, f"wf-{n}", [0, [], 0])
            cache = spectrum._cache_of(store)
            assert len(cache) == spectrum.CACHED_WORKFLOWS
            assert "wf-0" not in cache and f"wf-{spectrum.CACHED_WORKFLOWS + 9}" in cache
    finally:
        store.close()


def test_cache_goes_with_its_store_and_is_not_shared_between_stores(tmp_path):
    a = open_store(f"sqlite:///{tmp_path / 'a.db'}")
    b = open_store(f"sqlite:///{tmp_path / 'b.db'}")
    with spectrum._cache_lock:
        spectrum._remember(a, "wf", [1, [("run-a", False, 0, {})], 0])
        assert spectrum._cache_of(b).get("wf") is None
    gc.collect()  # stores of earlier tests, dropped but not yet collected
    before = len(spectrum._caches)
    a.close()
    del a
    gc.collect()
    assert len(spectrum._caches) == before - 1
    b.close()


def test_a_closed_store_with_its_ledger_is_freed(tmp_path):
    """Nothing process-global keeps a store (and its ledger) alive once the caller drops it."""
    import weakref

    store = open_store(f"sqlite:///{tmp_path / 'c.db'}")
    ref = weakref.ref(store)
    store.close()
    del store
    gc.collect()
    assert ref() is None
