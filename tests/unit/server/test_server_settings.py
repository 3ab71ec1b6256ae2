"""The ``[server]`` section: defaults, the file, the environment, and errors naming the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from flightlog.errors import ConfigurationError
from flightlog.server.settings import DEFAULT_IDLE_TRACE_TIMEOUT, load_server_settings


def test_defaults_file_and_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "flightlog.toml"
    cfg.write_text("[teams.a]\nchannels = []\n")
    assert load_server_settings(cfg, environ={}).idle_trace_timeout == DEFAULT_IDLE_TRACE_TIMEOUT
    cfg.write_text('[server]\nidle_trace_timeout = "90s"\n')
    assert load_server_settings(cfg, environ={}).idle_trace_timeout == 90
    env = {"FLIGHTLOG_IDLE_TRACE_TIMEOUT": "2m"}
    assert load_server_settings(cfg, environ=env).idle_trace_timeout == 120
    env = {"FLIGHTLOG__SERVER__IDLE_TRACE_TIMEOUT": "0s"}
    assert load_server_settings(cfg, environ=env).idle_trace_timeout == 0


def test_bad_values_name_their_line_or_variable(tmp_path: Path) -> None:
    cfg = tmp_path / "flightlog.toml"
    cfg.write_text('[teams.a]\nchannels = []\n\n[server]\nidle_trace_timeout = "soon"\n')
    with pytest.raises(
        ConfigurationError, match=r"flightlog.toml line 5: 'soon' is not a duration"
    ):
        load_server_settings(cfg, environ={})
    cfg.write_text('[server]\nidle_timeout = "5m"\n')
    with pytest.raises(
        ConfigurationError, match=r"line 2: unknown setting .idle_timeout. in \[server\]"
    ):
        load_server_settings(cfg, environ={})
    with pytest.raises(ConfigurationError, match=r"\$FLIGHTLOG_IDLE_TRACE_TIMEOUT"):
        load_server_settings(None, environ={"FLIGHTLOG_IDLE_TRACE_TIMEOUT": "-1"})


def test_run_end_batch_timeout_from_the_file_and_the_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "flightlog.toml"
    cfg.write_text("[teams.a]\nchannels = []\n")
    assert load_server_settings(cfg, environ={}).run_end_batch_timeout == 300
    cfg.write_text('[server]\nrun_end_batch_timeout = "2m"\n')
    assert load_server_settings(cfg, environ={}).run_end_batch_timeout == 120
    env = {"FLIGHTLOG_RUN_END_BATCH_TIMEOUT_S": "3"}  # seconds, as the README says
    assert load_server_settings(cfg, environ=env).run_end_batch_timeout == 3
    with pytest.raises(ConfigurationError, match=r"\$FLIGHTLOG_RUN_END_BATCH_TIMEOUT_S: 'soon'"):
        load_server_settings(cfg, environ={"FLIGHTLOG_RUN_END_BATCH_TIMEOUT_S": "soon"})
    cfg.write_text('[server]\nrun_end_batch_timeout = "0s"\n')
    with pytest.raises(ConfigurationError, match=r"run_end_batch_timeout must be more than 0 s"):
        load_server_settings(cfg, environ={})
