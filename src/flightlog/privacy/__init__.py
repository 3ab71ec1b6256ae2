"""Privacy at capture: secrets and personal data scrubbed before anything is stored.

One call at each front door: ``scrub(batch, scrubber)``, made by the SDK's background writer
before a batch reaches its sink (a local store or a remote server) and by the server's
ingestion right after decoding. ``load()`` resolves the settings (``[privacy]`` in
``flightlog.toml``, ``FLIGHTLOG_PRIVACY*``) into a ``Scrubber`` once.

- ``detectors``: the built-in rules (provider keys and tokens, credentials, e-mail addresses,
  phone numbers, card numbers with Luhn, IBANs with mod-97, ...)
- ``config``: settings, per-rule actions (mask, hash, drop), your own patterns
- ``scrub``: applying them to text, JSON values, payloads and whole batches
"""

from __future__ import annotations

from collections.abc import Mapping

from flightlog.model import Batch
from flightlog.privacy.config import PrivacyConfig
from flightlog.privacy.scrub import Scrubber, redacted

__all__ = ["PrivacyConfig", "Scrubber", "load", "redacted", "scrub"]


def load(env: Mapping[str, str] | None = None) -> Scrubber:
    """The scrubber for the current settings. Raises ``ConfigurationError`` naming the line
    of a bad setting."""
    return Scrubber(PrivacyConfig.from_env(env))


def scrub(batch: Batch, scrubber: Scrubber | None) -> Batch:
    """Scrub ``batch`` in place before it is stored or sent (a no-op when ``scrubber`` is
    None or turned off)."""
    if scrubber is None:
        return batch
    return scrubber.batch(batch)
