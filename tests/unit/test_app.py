"""The composition root (``flightlog.app``): ``flightlog.store.open_store`` opens a store and
nothing else; every front door opens its store through ``flightlog.app`` and gets the audit
ledger attached, as before the root existed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

import flightlog
from flightlog import app
from flightlog.errors import ConfigurationError, StoreError
from flightlog.store import open_store as open_bare


def _entries(url: str) -> int:
    """Ledger entries in the store at ``url`` (0 when it has no ledger tables)."""
    store = open_bare(url, readonly=True)
    try:
        if store.schema_version("ledger") == 0:
            return 0
        with store.read() as tx:
            row = tx.fetchone("SELECT count(*) FROM ledger_entries")
        return int(row[0]) if row else 0
    finally:
        store.close()


def _record_one(url: str) -> None:
    flightlog.configure(url)
    try:
        with flightlog.run("app-root", owner="team"):
            pass
        assert flightlog.flush()
    finally:
        flightlog.shutdown()


@pytest.fixture(autouse=True)
def _ledger_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FLIGHTLOG_LEDGER", raising=False)
    monkeypatch.chdir(tmp_path)  # no flightlog.toml of the repository


def test_open_store_of_the_store_package_has_no_side_effects(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bare.db'}"
    store = open_bare(url)
    try:
        assert store.schema_version("ledger") == 0
        store.write(flightlog.model.Batch())
    finally:
        store.close()
    assert _entries(url) == 0


def test_the_root_attaches_the_ledger(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wired.db'}"
    store = app.open_store(url)
    try:
        assert store.schema_version("ledger") >= 1
    finally:
        store.close()


def test_the_root_leaves_read_only_stores_and_ledger_off_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    open_bare(url).close()
    store = app.open_store(url, readonly=True)
    try:
        assert store.schema_version("ledger") == 0
    finally:
        store.close()
    monkeypatch.setenv("FLIGHTLOG_LEDGER", "off")
    store = app.open_store(url)
    try:
        assert store.schema_version("ledger") == 0
    finally:
        store.close()


def test_a_bad_ledger_setting_closes_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLIGHTLOG_LEDGER_CHECKPOINT_EVERY", "0")
    opened: list[Any] = []
    real = flightlog.store.open_store

    def spy(*args: Any, **kwargs: Any) -> Any:
        opened.append(real(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(flightlog.store, "open_store", spy)
    with pytest.raises(ConfigurationError, match="checkpoint_every"):
        app.open_store(f"sqlite:///{tmp_path / 'bad.db'}")
    assert len(opened) == 1
    with pytest.raises(StoreError, match="closed database"):
        opened[0].get_run("0" * 32)


def test_every_front_door_gets_the_ledger(tmp_path: Path) -> None:
    # SDK: flightlog.configure
    sdk = f"sqlite:///{tmp_path / 'sdk.db'}"
    _record_one(sdk)
    assert _entries(sdk) >= 1
    # the public opener
    public = f"sqlite:///{tmp_path / 'public.db'}"
    store = flightlog.open_store(public)
    try:
        assert store.schema_version("ledger") >= 1
    finally:
        store.close()
    # CLI: a command that writes (importing a transcript) on a new store
    from flightlog.cli.main import cli as flightlog_cli

    cli = tmp_path / "cli.db"
    transcript = tmp_path / "t.json"
    transcript.write_text(
        '{"question": "q", "history": [{"role": "user", "content": "hi"},'
        ' {"role": "assistant", "name": "a", "content": "hello"}]}',
        encoding="utf-8",
    )
    result = CliRunner().invoke(flightlog_cli, ["import", str(transcript), "--db", str(cli)])
    assert result.exit_code == 0, result.output
    assert _entries(f"sqlite:///{cli}") >= 1
    # server: flightlog serve's app opens its writer through the root
    from flightlog.server.app import create_app

    served = f"sqlite:///{tmp_path / 'served.db'}"
    with TestClient(create_app(served)) as client:
        assert client.get("/healthz").status_code == 200
    bare = open_bare(served, readonly=True)
    try:
        assert bare.schema_version("ledger") >= 1
    finally:
        bare.close()


def test_no_front_door_opens_a_bare_store() -> None:
    """Outside the store and the root, nothing in the package opens a store without the
    root's wiring: an import of ``flightlog.store.open_store`` anywhere else fails here."""
    import ast

    src = Path(flightlog.__file__).parent
    offenders = []
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src).as_posix()
        if rel.startswith("store/") or rel == "app.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module in ("flightlog.store", "flightlog.store.sqlite")
                and any(a.name in ("open_store", "SQLiteStore") for a in node.names)
            ):
                offenders.append(f"{rel}:{node.lineno}")
            if isinstance(node, ast.Attribute) and node.attr == "open_store":
                value = node.value
                if isinstance(value, ast.Attribute) and value.attr == "store":
                    offenders.append(f"{rel}:{node.lineno}")
    assert not offenders, "open stores through flightlog.app.open_store: " + ", ".join(offenders)
