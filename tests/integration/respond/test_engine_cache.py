"""The engine the pipeline uses for a store: built once per configuration version, and
forgotten when the store closes (the cache holds no more than the stores open)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flightlog.respond import engine as engine_mod
from flightlog.store import open_store

from .conftest import Receiver, write_config


def test_one_engine_per_open_store_forgotten_on_close(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLIGHTLOG_CONFIG", str(write_config(tmp_path / "f.toml", receiver)))
    stores = [open_store(f"sqlite:///{tmp_path / f'{i}.db'}") for i in range(3)]
    engines = [engine_mod.engine_for(s) for s in stores]
    assert all(e is not None for e in engines)
    assert engine_mod.engine_for(stores[0]) is engines[0]  # the same until the file changes
    assert engines[0] is not engines[1]
    for s in stores:
        assert id(s) in engine_mod._engines
        s.close()
        assert id(s) not in engine_mod._engines
