"""Flightlog's exceptions.

One root, so callers can catch everything Flightlog raises with one clause::

    FlightlogError
     +-- ConfigurationError      a setting, URL or file is wrong; raised at configure()/start
     +-- StoreError              the store cannot be opened, read or written
     |    +-- StoreCorruptError  the store file is not a valid Flightlog database, or is damaged
     |    +-- StoreSchemaError   a read-only store lacks tables at the version this code reads
     +-- NotFoundError           a run, step or record id matches nothing
     +-- LedgerError             the audit ledger is inconsistent or a proof does not verify
     +-- InputError              a record or request is malformed

Recording never raises into user code: these are raised by configuration, queries and tools.
"""

from __future__ import annotations


class FlightlogError(Exception):
    """Root of every exception Flightlog raises."""


class ConfigurationError(FlightlogError):
    """A setting, URL or configuration file is wrong."""


class StoreError(FlightlogError):
    """The store cannot be opened, read or written."""


class StoreCorruptError(StoreError):
    """The store file exists but is not a valid Flightlog database, or pages of it are
    damaged."""


class StoreSchemaError(StoreError):
    """A store opened read-only lacks a component's tables at the version this code reads
    (``have`` is 0 when the component never ran on it); it is not migrated by reading."""

    def __init__(self, message: str, *, component: str = "", have: int = 0) -> None:
        super().__init__(message)
        self.component = component
        self.have = have


class NotFoundError(FlightlogError):
    """A run, step or record id matches nothing."""


class LedgerError(FlightlogError):
    """The audit ledger is inconsistent, or a proof or signature does not verify."""


class InputError(FlightlogError):
    """A record or request is malformed."""
