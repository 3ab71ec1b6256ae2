"""Anchoring: publishing checkpoints outside the database.

A rewritten database can be re-hashed and even re-signed by whoever holds the key, but not
what was already published. Every checkpoint is published to a *witness*
(``FLIGHTLOG_LEDGER_WITNESS``): a file it is appended to, a directory (one
``<origin>.checkpoints`` file per log; by default ``<config dir>/flightlog/witness/``, outside
the store's directory), or a git repository (appended and committed: its history is itself a
hash chain that is easily pushed and mirrored). Point it at storage the database's writers
can append to but not rewrite. ``audit verify`` checks the log against every witnessed
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


def witness_file(witness: Path, origin: str) -> Path:
    """The file a log's checkpoints go to: ``witness`` itself, or ``<origin>.checkpoints``
    inside it when it is a directory (or a git repository)."""
    if witness.is_dir():
        return witness / f"{safe_name(origin)}.checkpoints"
    return witness


def is_git_repo(path: Path) -> bool:
    return path.is_dir() and (path / ".git").exists()


def publish(witness: Path, signed_note: str, origin: str, size: int) -> Path:
    """Publish a checkpoint to the witness: append it to the witness file (fsync), and in a
    git repository also commit it. A directory that does not exist yet is created (0700)
    when the path has no file suffix."""
    if not witness.exists() and not witness.suffix:
        witness.mkdir(mode=0o700, parents=True, exist_ok=True)
    if is_git_repo(witness):
        return anchor_git(witness, signed_note, origin, size)
    path = witness_file(witness, origin)
    append_witness(path, signed_note)
    return path


def append_witness(path: Path, signed_note: str) -> None:
    """Append a signed checkpoint to the witness file durably (fsync)."""
    data = (signed_note + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_witness(path: Path, origin: str | None = None) -> list[str]:
    """The signed notes in a witness file (or, with ``origin``, a witness directory or git
    repository), oldest first."""
    if origin is not None:
        path = witness_file(path, origin)
    if not path.exists() or path.is_dir():
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


def safe_name(origin: str) -> str:
    """A log origin as a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", origin)


def anchor_git(repo: Path, signed_note: str, origin: str, size: int) -> Path:
    """Append the checkpoint to ``<repo>/<origin>.checkpoints`` and commit it.

    Returns the file's path. The repository must exist (``git init``); its history is
    the published record.
    """
    repo = Path(repo)
    if not is_git_repo(repo):
        raise LedgerError(f"{repo} is not a git repository; create it with 'git init {repo}'")
    path = repo / f"{safe_name(origin)}.checkpoints"
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
