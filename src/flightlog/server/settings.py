"""The ``[server]`` section of flightlog.toml.

::

    [server]
    idle_trace_timeout = "5m"   # close a trace whose root span never came, this long after
                                # its last span arrived ("0s" never closes one)

    run_end = "process"         # where the run-end pipeline runs: "process" (a worker process
                                # of its own, off the ingestion GIL) or "thread" (a thread of
                                # the server process)
    run_end_batch_timeout = "5m"  # a worker that has not answered a batch this long is killed
                                  # and the batch handed to another

From the environment: ``FLIGHTLOG_IDLE_TRACE_TIMEOUT=30s``, ``FLIGHTLOG_RUN_END=thread`` and
``FLIGHTLOG_RUN_END_BATCH_TIMEOUT_S=120`` (seconds, or a duration)
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
DEFAULT_RUN_END_BATCH_TIMEOUT = 300.0  # seconds
ENV_RUN_END_BATCH_TIMEOUT = "FLIGHTLOG_RUN_END_BATCH_TIMEOUT_S"


class ServerSection(Section, frozen=True):
    """``[server]``, as written."""

    idle_trace_timeout: Duration = Duration(int(DEFAULT_IDLE_TRACE_TIMEOUT * NS))
    run_end: Literal["process", "thread"] = "process"
    run_end_batch_timeout: Duration = Duration(int(DEFAULT_RUN_END_BATCH_TIMEOUT * NS))


@dataclass(frozen=True)
class ServerSettings:
    idle_trace_timeout: float = DEFAULT_IDLE_TRACE_TIMEOUT  # seconds; 0 = never
    run_end: str = DEFAULT_RUN_END  # "process" or "thread"
    # seconds the run-end worker has to answer a batch before it is killed and the batch
    # handed to another
    run_end_batch_timeout: float = DEFAULT_RUN_END_BATCH_TIMEOUT


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
    idle = _duration(cfg, ENV_IDLE_TRACE_TIMEOUT, section.idle_trace_timeout)
    batch_timeout = _duration(cfg, ENV_RUN_END_BATCH_TIMEOUT, section.run_end_batch_timeout)
    if batch_timeout <= 0:
        raise ConfigurationError(
            "run_end_batch_timeout must be more than 0 s (it is how long a run-end batch may "
            f"take before its worker is replaced), got {batch_timeout:g} s"
        )
    run_end = section.run_end
    raw = cfg.environ.get(ENV_RUN_END)
    if raw:
        if raw.strip().lower() not in RUN_END_MODES:
            raise ConfigurationError(
                f"${ENV_RUN_END} must be one of {', '.join(RUN_END_MODES)}, got {raw!r}"
            )
        run_end = raw.strip().lower()  # type: ignore[assignment]
    return ServerSettings(
        idle_trace_timeout=idle, run_end=run_end, run_end_batch_timeout=batch_timeout
    )


def _duration(cfg: Config, env: str, value: Duration) -> float:
    """Seconds of a duration setting, ``$env`` (a duration or a number of seconds) winning
    over the file."""
    raw = cfg.environ.get(env)
    if not raw:
        return value.seconds
    try:
        return Duration.from_toml(raw).seconds
    except InputError as exc:
        raise ConfigurationError(f"${env}: {exc}") from None
