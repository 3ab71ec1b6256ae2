"""The ``[server]`` section of flightlog.toml.

::

    [server]
    idle_trace_timeout = "5m"   # close a trace whose root span never came, this long after
                                # its last span arrived ("0s" never closes one)

From the environment: ``FLIGHTLOG_IDLE_TRACE_TIMEOUT=30s`` (or, as for every file setting,
``FLIGHTLOG__SERVER__IDLE_TRACE_TIMEOUT``), which wins over the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flightlog.errors import ConfigurationError

DEFAULT_IDLE_TRACE_TIMEOUT = 300.0  # seconds
_KNOWN = {"idle_trace_timeout"}
ENV_IDLE_TRACE_TIMEOUT = "FLIGHTLOG_IDLE_TRACE_TIMEOUT"


@dataclass(frozen=True)
class ServerSettings:
    idle_trace_timeout: float = DEFAULT_IDLE_TRACE_TIMEOUT  # seconds; 0 = never


def load_server_settings(
    path: Any = None, *, environ: Mapping[str, str] | None = None
) -> ServerSettings:
    """The validated ``[server]`` section (defaults when absent); a bad value names its line
    (or its environment variable)."""
    from flightlog.config import load_config
    from flightlog.respond.config import NS, parse_duration

    env = os.environ if environ is None else environ
    cfg = load_config(path, environ=env)
    section = cfg.section("server")
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ConfigurationError(f"{cfg.where('server')}: [server] must be a table")
    unknown = sorted(set(section) - _KNOWN)
    if unknown:
        raise ConfigurationError(
            f"{cfg.where('server', unknown[0])}: unknown setting server.{unknown[0]}; "
            f"known: {', '.join(sorted(_KNOWN))}"
        )
    idle = ServerSettings.idle_trace_timeout
    if env.get(ENV_IDLE_TRACE_TIMEOUT):
        idle = parse_duration(env[ENV_IDLE_TRACE_TIMEOUT], f"${ENV_IDLE_TRACE_TIMEOUT}") / NS
    elif "idle_trace_timeout" in section:
        where = cfg.where("server", "idle_trace_timeout")
        idle = parse_duration(section["idle_trace_timeout"], where) / NS
    return ServerSettings(idle_trace_timeout=idle)
