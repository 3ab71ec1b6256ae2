"""``flightlog serve`` shortens the interpreter's switch interval: the ingestion writer (the
server's serial stage) lets go of the GIL at every SQLite call and waits up to the interval
to get it back from a request thread."""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

import pytest

from flightlog.server import app as server_app
from flightlog.server import listen
from flightlog.server.ingest import SWITCH_INTERVAL_S


def test_serve_sets_the_switch_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[float] = []
    stub = SimpleNamespace(keys=SimpleNamespace(enabled=lambda: False))
    monkeypatch.setattr(server_app, "create_app", lambda url, **kw: stub)

    def run(app: Any, **kw: Any) -> None:
        seen.append(sys.getswitchinterval())

    monkeypatch.setattr(listen, "run", run)
    before = sys.getswitchinterval()
    try:
        server_app.serve("sqlite:///unused.db")
    finally:
        sys.setswitchinterval(before)
    assert seen == [pytest.approx(SWITCH_INTERVAL_S)]
    assert SWITCH_INTERVAL_S < 0.005  # shorter than Python's default


@pytest.mark.parametrize("fails", [False, True])
def test_serve_gives_the_switch_interval_back_when_it_returns(
    monkeypatch: pytest.MonkeyPatch, fails: bool
) -> None:
    """Only while serving: a program that runs ``serve`` (in a thread, until stopped, or
    failing to bind) keeps its own interval afterwards."""
    stub = SimpleNamespace(keys=SimpleNamespace(enabled=lambda: False))
    monkeypatch.setattr(server_app, "create_app", lambda url, **kw: stub)

    def run(app: Any, **kw: Any) -> None:
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
        if fails:
            raise OSError("address already in use")

    monkeypatch.setattr(listen, "run", run)
    before = sys.getswitchinterval()
    mine = 0.004
    sys.setswitchinterval(mine)
    try:
        if fails:
            with pytest.raises(OSError):
                server_app.serve("sqlite:///unused.db")
        else:
            server_app.serve("sqlite:///unused.db")
        assert sys.getswitchinterval() == pytest.approx(mine)
    finally:
        sys.setswitchinterval(before)


@pytest.mark.parametrize("fails", [False, True])
def test_serve_tunes_the_collector_only_while_serving(
    monkeypatch: pytest.MonkeyPatch, fails: bool
) -> None:
    """While serving, what start-up loaded is frozen out of the collector's sight and young
    collections run every GC_THRESHOLDS[0] allocations; afterwards (serve returned or failed
    to bind) the program's own thresholds are back and nothing stays frozen."""
    import gc

    from flightlog.server.ingest import GC_THRESHOLDS

    stub = SimpleNamespace(keys=SimpleNamespace(enabled=lambda: False))
    monkeypatch.setattr(server_app, "create_app", lambda url, **kw: stub)
    during: list[tuple[tuple[int, ...], int]] = []

    def run(app: Any, **kw: Any) -> None:
        during.append((gc.get_threshold(), gc.get_freeze_count()))
        if fails:
            raise OSError("address already in use")

    monkeypatch.setattr(listen, "run", run)
    before = gc.get_threshold()
    mine = (900, 11, 12)
    gc.set_threshold(*mine)
    try:
        if fails:
            with pytest.raises(OSError):
                server_app.serve("sqlite:///unused.db")
        else:
            server_app.serve("sqlite:///unused.db")
        assert gc.get_threshold() == mine
        assert gc.get_freeze_count() == 0
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
    [(thresholds, frozen)] = during
    assert thresholds == GC_THRESHOLDS
    assert frozen > 0
    assert GC_THRESHOLDS[0] > 700  # less often than Python's default


def test_serve_leaves_a_programs_own_frozen_objects_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    stub = SimpleNamespace(keys=SimpleNamespace(enabled=lambda: False))
    monkeypatch.setattr(server_app, "create_app", lambda url, **kw: stub)
    monkeypatch.setattr(listen, "run", lambda app, **kw: None)
    before = gc.get_threshold()
    gc.freeze()  # the host program froze what it loaded
    try:
        assert gc.get_freeze_count() > 0
        server_app.serve("sqlite:///unused.db")
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
