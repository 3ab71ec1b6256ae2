"""A store as files: read commands never write (a read-only evidence copy reads, unchanged),
a mistyped --db is an error rather than a new database, and a file with damaged pages gives
a clear message in every command, never a traceback."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTLOG_")}


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """The demo's store, closed (its write-ahead log checkpointed), and its failed run."""
    home = tmp_path_factory.mktemp("demo") / "d"
    run_cli("demo", "--runs", "4", "--dir", str(home), env=_env(), check=True)
    rid = run_cli("runs", "--status", "failed", "-q", cwd=home, env=_env(), check=True)
    yield home / "flightlog.db", rid.stdout.strip()


READ_COMMANDS = [
    ("runs",),
    ("runs", "--json"),
    ("show", "{rid}"),
    ("show", "{rid}", "--json"),
    ("why", "{rid}"),
    ("report", "{rid}", "--format", "md"),
    ("incidents",),
    ("alerts",),
    ("audit", "status"),
]


def _digest(directory: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file()
    }


def test_read_commands_read_a_read_only_copy_and_change_nothing(
    demo_store: tuple[Path, str], tmp_path: Path
) -> None:
    db, rid = demo_store
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    shutil.copy2(db, evidence / "flightlog.db")
    (evidence / "flightlog.db").chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    evidence.chmod(stat.S_IRUSR | stat.S_IXUSR)
    before = _digest(evidence)
    try:
        for args in READ_COMMANDS:
            argv = [a.format(rid=rid) for a in args]
            p = run_cli(*argv, cwd=evidence, env=_env())
            assert p.returncode == 0, (argv, p.stderr)
            assert "Traceback" not in p.stderr
        # Every byte and every file as before: no migration, no -wal/-shm, no key file.
        # (Root ignores file modes, so this compares contents rather than relying on them.)
        assert _digest(evidence) == before
        why = run_cli("why", rid, cwd=evidence, env=_env(), check=True).stdout
        assert "root cause step 2 search_policy" in why
        # audit verify reads the same copy without changing it (whether the copy's signing
        # key is present is the ledger's concern; the copy itself must stay as it was)
        p = run_cli("audit", "verify", cwd=evidence, env=_env())
        assert "Traceback" not in p.stderr
        assert (evidence / "flightlog.db").read_bytes() == (db.read_bytes())
        assert not (evidence / "flightlog.db-wal").exists()
        assert not (evidence / "flightlog.db-shm").exists()
    finally:
        evidence.chmod(stat.S_IRWXU)


def test_a_mistyped_db_is_an_error_not_a_new_database(tmp_path: Path) -> None:
    typo = tmp_path / "flightlgo.db"
    for args in [
        *READ_COMMANDS,
        ("audit", "verify"),
        ("detect", "{rid}"),
        ("watch", "--once"),
        ("incident", "ack", "1"),
    ]:
        argv = [a.format(rid="abcdef") for a in args]
        p = run_cli(*argv, "--db", f"sqlite:///{typo}", env=_env())
        assert p.returncode == 1, (argv, p.stdout, p.stderr)
        assert f"no store at {typo}" in p.stderr and "does not exist" in p.stderr, argv
        assert "Traceback" not in p.stderr
    assert sorted(tmp_path.iterdir()) == []


def test_a_server_address_without_its_scheme_is_not_made_a_file(tmp_path: Path) -> None:
    """configure("localhost:4318") and --db 127.0.0.1:4318 used to create a SQLite file of
    that name (a bare path is shorthand for sqlite:///path) and record into it."""
    script = (
        "import flightlog\n"
        "try:\n"
        "    flightlog.configure('localhost:4318')\n"
        "except flightlog.ConfigurationError as exc:\n"
        "    print(exc)\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=_env(), capture_output=True, text=True
    )
    assert "looks like a server address" in p.stdout and "http://localhost:4318" in p.stdout
    for command in (("runs",), ("serve", "--port", "0"), ("demo", "--runs", "3")):
        r = run_cli(*command, "--db", "127.0.0.1:4318", cwd=tmp_path, env=_env())
        assert r.returncode == 1 and "Traceback" not in r.stderr, (command, r.stderr)
        assert "sqlite:///127.0.0.1:4318" in r.stderr, (command, r.stderr)
    assert sorted(tmp_path.iterdir()) == []
    ok = run_cli("runs", "--db", "my.db", cwd=tmp_path, env=_env())  # a bare path still is one
    assert ok.returncode == 1 and "no store at my.db" in ok.stderr


def test_an_empty_run_id_is_a_usage_error() -> None:
    for command in ("why", "show", "report"):
        p = run_cli(command, "", env=_env())
        assert p.returncode == 2 and "Invalid value for 'RUN': empty" in p.stderr, command


def page_size_of(db: Path) -> int:
    """The page size in the SQLite file's header (new stores: 16 KiB; older ones: 4 KiB)."""
    with db.open("rb") as f:
        raw = int.from_bytes(f.read(100)[16:18], "big")
    return 65_536 if raw == 1 else raw


def damage(db: Path, pages: range) -> None:
    """Overwrite whole pages of ``db`` with bytes that are no SQLite page."""
    page_size = page_size_of(db)
    with db.open("r+b") as f:
        for page in pages:
            f.seek(page * page_size)
            f.write(bytes([0xA5]) * page_size)


def test_damaged_pages_give_a_clear_error_in_every_command(
    demo_store: tuple[Path, str], tmp_path: Path
) -> None:
    db, rid = demo_store
    bad = tmp_path / "bad.db"
    shutil.copy2(db, bad)
    size = bad.stat().st_size // page_size_of(bad)
    # Every page after the first (the header and, at 16 KiB, the whole schema): a new
    # store's tables and indexes here fit in one 16 KiB page each, so damage to a share of
    # the pages would miss tables that some commands read (a third did at 4 KiB pages).
    damage(bad, range(1, size))
    for args in [*READ_COMMANDS, ("audit", "verify"), ("detect", "{rid}"), ("watch", "--once")]:
        argv = [a.format(rid=rid) for a in args]
        p = run_cli(*argv, "--db", f"sqlite:///{bad}", env=_env())
        assert p.returncode == 1, (argv, p.stdout[-500:])
        assert "Traceback" not in p.stderr, (argv, p.stderr[-2000:])
        assert f"store {bad} is damaged" in p.stderr, (argv, p.stderr)
        assert ".recover" in p.stderr
