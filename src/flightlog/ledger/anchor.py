"""Anchoring: publishing checkpoints outside the database.

A rewritten database can be re-hashed and even re-signed by whoever holds the key, but not
what was already published. Every checkpoint is appended to a *witness file* (by default
``<db>.checkpoints``; point ``FLIGHTLOG_LEDGER_WITNESS`` at storage the database's writers
cannot rewrite) and can be committed to a git repository, whose history is itself a hash
chain that is easily mirrored. ``audit verify`` checks the log against every witnessed
checkpoint: a witnessed size larger than the log means it was rolled back or truncated, a
different root at the same size means it was rewritten.

File format: signed notes, one after another, each followed by an empty line.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from flightlog.errors import LedgerError
from flightlog.ledger import note as note_mod


def append_witness(path: Path, signed_note: str) -> None:
    """Append a signed checkpoint to the witness file durably (fsync)."""
    data = (signed_note + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_witness(path: Path) -> list[str]:
    """The signed notes in a witness file, oldest first."""
    if not path.exists():
        return []
    notes: list[str] = []
    body: list[str] = []
    sigs: list[str] = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.startswith(note_mod.SIG_PREFIX) and body:
            sigs.append(line)
            continue
        if sigs:  # a note ended
            notes.append("\n".join(body) + "\n\n" + "\n".join(sigs) + "\n")
            body, sigs = [], []
        if line == "":
            continue
        body.append(line)
    if sigs:
        notes.append("\n".join(body) + "\n\n" + "\n".join(sigs) + "\n")
    elif body:
        raise LedgerError(f"witness file {path} ends with an unsigned note")
    return notes


def _safe(origin: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", origin)


def anchor_git(repo: Path, signed_note: str, origin: str, size: int) -> Path:
    """Append the checkpoint to ``<repo>/<origin>.checkpoints`` and commit it.

    Returns the file's path. The repository must exist (``git init``); its history is
    the published record.
    """
    repo = Path(repo)
    if not (repo / ".git").exists():
        raise LedgerError(f"{repo} is not a git repository; create it with 'git init {repo}'")
    path = repo / f"{_safe(origin)}.checkpoints"
    append_witness(path, signed_note)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": os.environ.get("GIT_AUTHOR_NAME", "flightlog"),
        "GIT_AUTHOR_EMAIL": os.environ.get("GIT_AUTHOR_EMAIL", "flightlog@localhost"),
        "GIT_COMMITTER_NAME": os.environ.get("GIT_COMMITTER_NAME", "flightlog"),
        "GIT_COMMITTER_EMAIL": os.environ.get("GIT_COMMITTER_EMAIL", "flightlog@localhost"),
    }
    for args in (["add", path.name], ["commit", "-q", "-m", f"checkpoint {origin} size {size}"]):
        proc = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, env=env
        )
        if proc.returncode != 0:
            raise LedgerError(f"git {args[0]} in {repo} failed: {proc.stderr.strip()}")
    return path
