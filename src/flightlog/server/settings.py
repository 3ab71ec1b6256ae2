"""The ``[server]`` section of flightlog.toml.

::

    [server]
    idle_trace_timeout = "5m"   # close a trace whose root span never came, this long after
                                # its last span arrived ("0s" never closes one)

Every key can be overridden from the environment as usual
(``FLIGHTLOG__SERVER__IDLE_TRACE_TIMEOUT=30s``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flightlog.errors import ConfigurationError

DEFAULT_IDLE_TRACE_TIMEOUT = 300.0  # seconds
_KNOWN = {"idle_trace_timeout"}


@dataclass(frozen=True)
class ServerSettings:
    idle_trace_timeout: float = DEFAULT_IDLE_TRACE_TIMEOUT  # seconds; 0 = never


def load_server_settings(path: Any = None) -> ServerSettings:
    """The validated ``[server]`` section (defaults when absent); a bad value names its line."""
    from flightlog.config import load_config
    from flightlog.respond.config import NS, parse_duration

    cfg = load_config(path)
    section = cfg.section("server")
    if section is None:
        return ServerSettings()
    if not isinstance(section, dict):
        raise ConfigurationError(f"{cfg.where('server')}: [server] must be a table")
    unknown = sorted(set(section) - _KNOWN)
    if unknown:
        raise ConfigurationError(
            f"{cfg.where('server', unknown[0])}: unknown setting server.{unknown[0]}; "
            f"known: {', '.join(sorted(_KNOWN))}"
        )
    idle = ServerSettings.idle_trace_timeout
    if "idle_trace_timeout" in section:
        idle = (
            parse_duration(section["idle_trace_timeout"], cfg.where("server", "idle_trace_timeout"))
            / NS
        )
    return ServerSettings(idle_trace_timeout=idle)
