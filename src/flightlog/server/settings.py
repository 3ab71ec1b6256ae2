"""The ``[server]`` section of flightlog.toml.

::

    [server]
    idle_trace_timeout = "5m"   # close a trace whose root span never came, this long after
                                # its last span arrived ("0s" never closes one)

    run_end = "process"         # where the run-end pipeline runs: "process" (a worker process
                                # of its own, off the ingestion GIL) or "thread" (a thread of
                                # the server process)

From the environment: ``FLIGHTLOG_IDLE_TRACE_TIMEOUT=30s`` and ``FLIGHTLOG_RUN_END=thread``
(or, as for every file setting, ``FLIGHTLOG__SERVER__IDLE_TRACE_TIMEOUT``), which win over
the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from flightlog._durations import NS, Duration
from flightlog.config import Config, Section, load_config
from flightlog.errors import ConfigurationError, InputError

DEFAULT_IDLE_TRACE_TIMEOUT = 300.0  # seconds
ENV_IDLE_TRACE_TIMEOUT = "FLIGHTLOG_IDLE_TRACE_TIMEOUT"
RUN_END_MODES = ("process", "thread")
DEFAULT_RUN_END = "process"
ENV_RUN_END = "FLIGHTLOG_RUN_END"


class ServerSection(Section, frozen=True):
    """``[server]``, as written."""

    idle_trace_timeout: Duration = Duration(int(DEFAULT_IDLE_TRACE_TIMEOUT * NS))
    run_end: Literal["process", "thread"] = "process"


@dataclass(frozen=True)
class ServerSettings:
    idle_trace_timeout: float = DEFAULT_IDLE_TRACE_TIMEOUT  # seconds; 0 = never
    run_end: str = DEFAULT_RUN_END  # "process" or "thread"


def load_server_settings(
    path: Any = None, *, environ: Mapping[str, str] | None = None
) -> ServerSettings:
    """The validated ``[server]`` section (defaults when absent); a bad value names its line
    (or its environment variable)."""
    return server_settings(load_config(path, environ=environ))


def server_settings(cfg: Config) -> ServerSettings:
    """``[server]`` of a loaded configuration, validated once per ``cfg``."""
    return cfg.derive("server", lambda: _validate(cfg))


def _validate(cfg: Config) -> ServerSettings:
    section = cfg.typed(ServerSection, "server")
    idle = section.idle_trace_timeout.seconds
    raw = cfg.environ.get(ENV_IDLE_TRACE_TIMEOUT)
    if raw:
        try:
            idle = Duration.from_toml(raw).seconds
        except InputError as exc:
            raise ConfigurationError(f"${ENV_IDLE_TRACE_TIMEOUT}: {exc}") from None
    run_end = section.run_end
    raw = cfg.environ.get(ENV_RUN_END)
    if raw:
        if raw.strip().lower() not in RUN_END_MODES:
            raise ConfigurationError(
                f"${ENV_RUN_END} must be one of {', '.join(RUN_END_MODES)}, got {raw!r}"
            )
        run_end = raw.strip().lower()  # type: ignore[assignment]
    return ServerSettings(idle_trace_timeout=idle, run_end=run_end)
