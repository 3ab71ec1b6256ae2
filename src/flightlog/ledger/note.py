"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys.

A note is a text ending in a newline, a blank line, and signature lines
``— <key name> base64(key ID || signature)``. The key ID is the first four bytes of
SHA-256(key name || 0x0A || 0x01 || 32-byte public key) (signed-note, "Ed25519
signatures"). Keys are written in the same text forms as Go's ``golang.org/x/mod/sumdb/note``:

- verifier key: ``<name>+<key ID as 8 hex>+base64(0x01 || public key)``
- signer key:   ``PRIVATE+KEY+<name>+<key ID as 8 hex>+base64(0x01 || private seed)``

``cryptography`` is imported inside the functions that need it, so reading a ledger's
tables never loads it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from flightlog.errors import LedgerError

ALG_ED25519 = 0x01
SIG_PREFIX = "— "  # em dash U+2014, space


def key_id(name: str, public_key: bytes) -> bytes:
    """signed-note: SHA-256(key name || 0x0A || 0x01 || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


def _check_name(name: str) -> None:
    if not name or any(c.isspace() for c in name) or "+" in name:
        raise LedgerError(
            f"key name {name!r} is not valid; signed-note key names are non-empty and hold "
            "no spaces or '+'"
        )


@dataclass(frozen=True, slots=True)
class Verifier:
    """An Ed25519 note verifier key."""

    name: str
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public_key)

    def encode(self) -> str:
        raw = bytes([ALG_ED25519]) + self.public_key
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(raw).decode()}"

    @classmethod
    def parse(cls, text: str) -> Verifier:
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise LedgerError(
                f"verifier key {text.strip()[:60]!r} is not in note format "
                "(expected NAME+KEYID+BASE64KEY)"
            )
        name, hex_id, b64 = parts
        _check_name(name)
        try:
            raw = base64.b64decode(b64, validate=True)
            wanted_id = bytes.fromhex(hex_id)
        except (binascii.Error, ValueError) as exc:
            raise LedgerError(f"verifier key {name!r} has bad encoding: {exc}") from exc
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise LedgerError(f"verifier key {name!r} is not an Ed25519 key (type 0x01, 32 bytes)")
        v = cls(name, raw[1:])
        if v.key_id != wanted_id:
            raise LedgerError(f"verifier key {name!r}: key ID {hex_id} does not match the key")
        return v

    def verify(self, message: bytes, signature: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True, slots=True)
class Signer:
    """An Ed25519 note signer key."""

    name: str
    seed: bytes

    @classmethod
    def generate(cls, name: str) -> Signer:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        _check_name(name)
        seed = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return cls(name, seed)

    @property
    def verifier(self) -> Verifier:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        pub = (
            Ed25519PrivateKey.from_private_bytes(self.seed)
            .public_key()
            .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )
        return Verifier(self.name, pub)

    def encode(self) -> str:
        raw = bytes([ALG_ED25519]) + self.seed
        kid = self.verifier.key_id.hex()
        return f"PRIVATE+KEY+{self.name}+{kid}+{base64.b64encode(raw).decode()}"

    @classmethod
    def parse(cls, text: str) -> Signer:
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise LedgerError("signing key file is not in note format (PRIVATE+KEY+NAME+ID+KEY)")
        name, hex_id, b64 = parts[2:]
        _check_name(name)
        try:
            raw = base64.b64decode(b64, validate=True)
        except binascii.Error as exc:
            raise LedgerError(f"signing key {name!r} has bad base64: {exc}") from exc
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise LedgerError(f"signing key {name!r} is not an Ed25519 key")
        signer = cls(name, raw[1:])
        if signer.verifier.key_id.hex() != hex_id.lower():
            raise LedgerError(f"signing key {name!r}: key ID {hex_id} does not match the key")
        return signer

    def sign(self, text: str) -> str:
        """The signed note for ``text`` (which must end in a newline)."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        check_text(text)
        sig = Ed25519PrivateKey.from_private_bytes(self.seed).sign(text.encode())
        blob = base64.b64encode(self.verifier.key_id + sig).decode()
        return f"{text}\n{SIG_PREFIX}{self.name} {blob}\n"


def check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise LedgerError("note text must end with a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise LedgerError("note text must not contain control characters other than newline")


@dataclass(frozen=True, slots=True)
class Signature:
    name: str
    key_id: bytes
    signature: bytes


def split(note: str) -> tuple[str, list[Signature]]:
    """Split a signed note into its text and signatures (signed-note "Format")."""
    if not note.endswith("\n"):
        raise LedgerError("signed note does not end with a newline")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise LedgerError("signed note has no blank line between text and signatures")
    text, sig_block = note[: cut + 1], note[cut + 2 :]
    check_text(text)
    sigs: list[Signature] = []
    for line in sig_block.splitlines():
        if not line.startswith(SIG_PREFIX):
            raise LedgerError(f"signed note has a malformed signature line {line[:40]!r}")
        name, _, b64 = line[len(SIG_PREFIX) :].partition(" ")
        try:
            raw = base64.b64decode(b64, validate=True)
        except binascii.Error as exc:
            raise LedgerError(f"signature by {name!r} has bad base64") from exc
        if len(raw) < 5:
            raise LedgerError(f"signature by {name!r} is too short")
        sigs.append(Signature(name, raw[:4], raw[4:]))
    if not sigs:
        raise LedgerError("signed note has no signatures")
    return text, sigs


def open_note(note: str, verifier: Verifier) -> str:
    """The note's text if ``verifier`` signed it; else raise ``LedgerError``.

    As the spec requires, signatures from unknown keys are ignored, a known key's bad
    signature rejects the note, and a note with no verified known signature is rejected.
    """
    text, sigs = split(note)
    ok = False
    for s in sigs:
        if s.name != verifier.name or s.key_id != verifier.key_id:
            continue
        if not verifier.verify(text.encode(), s.signature):
            raise LedgerError(f"the signature by {verifier.name} on this note does not verify")
        ok = True
    if not ok:
        names = ", ".join(f"{s.name}+{s.key_id.hex()}" for s in sigs)
        raise LedgerError(
            f"note is not signed by the ledger key {verifier.name}+{verifier.key_id.hex()} "
            f"(signed by: {names})"
        )
    return text
