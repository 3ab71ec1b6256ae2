"""flightlog.toml is parsed once, re-read when it changes; overrides never leak into the cache."""

from __future__ import annotations

from pathlib import Path

from flightlog.config import load_config


def test_an_edited_file_is_read_again_and_overrides_do_not_stick(tmp_path: Path) -> None:
    f = tmp_path / "flightlog.toml"
    f.write_text("[ledger]\ncheckpoint_every = 10\n")
    first = load_config(f, environ={"FLIGHTLOG__LEDGER__CHECKPOINT_EVERY": "99"})
    assert first.data["ledger"]["checkpoint_every"] == 99
    again = load_config(f, environ={})
    assert again.data["ledger"]["checkpoint_every"] == 10  # the override did not stick
    f.write_text("[ledger]\ncheckpoint_every = 1000\n")
    assert load_config(f, environ={}).data["ledger"]["checkpoint_every"] == 1000
