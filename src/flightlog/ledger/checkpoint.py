"""C2SP tlog-checkpoint bodies (c2sp.org/tlog-checkpoint) inside signed notes.

The note text is three lines: the origin (the log's identity, also the key name), the tree
size in decimal without leading zeroes, and the base64 RFC 9162 root hash.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from flightlog.errors import LedgerError
from flightlog.ledger import note


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed tree head: ``origin``, ``size``, ``root`` and the signed note it came from."""

    origin: str
    size: int
    root: bytes
    note: str = ""

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    def to_dict(self) -> dict[str, object]:
        return {
            "origin": self.origin,
            "size": self.size,
            "root": base64.b64encode(self.root).decode(),
            "note": self.note,
        }


def sign(signer: note.Signer, size: int, root: bytes) -> Checkpoint:
    cp = Checkpoint(signer.name, size, root)
    return Checkpoint(cp.origin, size, root, signer.sign(cp.body()))


def parse_body(text: str) -> Checkpoint:
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise LedgerError("checkpoint text must have origin, size and root lines")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not origin:
        raise LedgerError("checkpoint origin line is empty")
    if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise LedgerError(f"checkpoint size {size_text!r} is not a decimal without leading zeroes")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error as exc:
        raise LedgerError(f"checkpoint root {root_text!r} is not base64") from exc
    if len(root) != 32:
        raise LedgerError(f"checkpoint root is {len(root)} bytes; expected 32")
    if any(not extra for extra in lines[3:-1]):
        raise LedgerError("checkpoint extension lines must be non-empty")
    return Checkpoint(origin, int(size_text), root)


def open_checkpoint(signed: str, verifier: note.Verifier) -> Checkpoint:
    """Verify the note's signature by ``verifier`` and parse the checkpoint in it."""
    text = note.open_note(signed, verifier)
    cp = parse_body(text)
    if cp.origin != verifier.name:
        raise LedgerError(
            f"checkpoint origin {cp.origin!r} is not the ledger's origin {verifier.name!r}"
        )
    return Checkpoint(cp.origin, cp.size, cp.root, signed)
