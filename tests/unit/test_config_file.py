"""flightlog.toml is parsed once, re-read when it changes; overrides never leak into the
cache; typed sections are validated once and their errors name the file, line and setting."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from flightlog._durations import Duration
from flightlog.config import ConfigLoader, Section, load_config, parse_config
from flightlog.errors import ConfigurationError
from flightlog.server.settings import ServerSection, server_settings


def test_an_edited_file_is_read_again_and_overrides_do_not_stick(tmp_path: Path) -> None:
    f = tmp_path / "flightlog.toml"
    f.write_text("[ledger]\ncheckpoint_every = 10\n")
    first = load_config(f, environ={"FLIGHTLOG__LEDGER__CHECKPOINT_EVERY": "99"})
    assert first.data["ledger"]["checkpoint_every"] == 99
    again = load_config(f, environ={})
    assert again.data["ledger"]["checkpoint_every"] == 10  # the override did not stick
    f.write_text("[ledger]\ncheckpoint_every = 1000\n")
    assert load_config(f, environ={}).data["ledger"]["checkpoint_every"] == 1000


def test_one_loaded_configuration_per_version_of_the_file(tmp_path: Path) -> None:
    f = tmp_path / "flightlog.toml"
    f.write_text("[respond]\nauto_resolve_after = 2\n")
    loader = ConfigLoader()
    a = loader.load(f, environ={})
    assert loader.load(f, environ={}) is a and loader.parses == 1
    # another environment: another configuration, from the same parse
    b = loader.load(f, environ={"FLIGHTLOG__RESPOND__AUTO_RESOLVE_AFTER": "4"})
    assert b is not a and b.data["respond"]["auto_resolve_after"] == 4 and loader.parses == 1
    assert a.data["respond"]["auto_resolve_after"] == 2
    f.write_text("[respond]\nauto_resolve_after = 30\n")  # another size: another version
    c = loader.load(f, environ={})
    assert c is not a and c.data["respond"]["auto_resolve_after"] == 30 and loader.parses == 2


def test_validated_once_per_loaded_configuration(tmp_path: Path) -> None:
    cfg = parse_config("[server]\nidle_trace_timeout = 3\n", Path("flightlog.toml"))
    assert server_settings(cfg) is server_settings(cfg)
    assert cfg.typed(ServerSection, "server") is cfg.typed(ServerSection, "server")
    assert server_settings(cfg).idle_trace_timeout == 3


class Limits(Section, frozen=True):
    tokens: int = 0
    window: Duration = Duration(0)


class Sample(msgspec.Struct, kw_only=True, frozen=True):
    limits: dict[str, Limits] = {}
    rules: tuple[Limits, ...] = ()


GOOD = """\
[limits.alpha]
tokens = 10

[limits.beta]
tokens = 20
window = "5m"

[[rules]]
tokens = 1
[[rules]]
tokens = 2
"""


@pytest.mark.parametrize(
    ("old", "new", "line", "words"),
    [
        ('"5m"', '"soon"', 6, "'soon' is not a duration"),  # found under [limits.<name>]
        ("tokens = 2\n", "tokenz = 2\n", 11, "unknown setting 'tokenz' in [[rules]]; expected one"),
        ("tokens = 10", 'tokens = "ten"', 2, "limits.alpha.tokens: expected a whole number"),
        (
            "s]]\ntokens = 1\n",
            "s]]\ntokens = true\n",
            9,
            "rules.0.tokens: expected a whole number, got True",
        ),
    ],
)
def test_typed_errors_name_the_file_line_and_setting(
    old: str, new: str, line: int, words: str
) -> None:
    assert parse_config(GOOD).typed(Sample).limits["beta"].window == 300 * 10**9
    cfg = parse_config(GOOD.replace(old, new, 1), Path("flightlog.toml"))
    with pytest.raises(ConfigurationError) as err:
        cfg.typed(Sample)
    assert f"flightlog.toml line {line}: " in str(err.value)
    assert words in str(err.value)


@pytest.mark.parametrize(
    ("text", "check", "words"),
    [
        ("[detect]\ndisabled = ['latency']\n", "detect", "unknown setting 'disabled' in [detect]"),
        ("[detect.budgets.wf]\ncots = 1\n", "detect", "'cots' in [detect.budgets.wf]"),
        ("[detect.budgets]\ntokens = 'x'\n", "detect", "detect.budgets.tokens: expected a number"),
        ("[judge]\nmodle = 'm'\n", "judge", "unknown setting 'modle' in [judge]"),
        ("[judge]\nbudget_tokens = 'lots'\n", "judge", "expected a whole number, got 'lots'"),
        (
            "[ledger]\ncheckpoint_every = 0\n",
            "ledger",
            "checkpoint_every: expected a whole number >= 1",
        ),
        (
            "[reliability]\nwindw = '7d'\n",
            "reliability",
            "unknown setting 'windw' in [reliability]",
        ),
        ("[server]\nidle_trace_timeout = true\n", "server", 'expected a duration such as "5m"'),
    ],
)
def test_every_section_is_declared_and_its_mistakes_name_the_line(
    text: str, check: str, words: str
) -> None:
    from flightlog.detect.settings import detect_section
    from flightlog.forensics.judge import JudgeSection
    from flightlog.ledger.config import LedgerSection
    from flightlog.reliability.settings import reliability_settings

    checks = {
        "detect": detect_section,
        "judge": lambda c: c.typed(JudgeSection, "judge"),
        "ledger": lambda c: c.typed(LedgerSection, "ledger"),
        "reliability": reliability_settings,
        "server": server_settings,
    }
    cfg = parse_config(text, Path("flightlog.toml"))
    with pytest.raises(ConfigurationError) as err:
        checks[check](cfg)
    assert str(err.value).startswith("flightlog.toml line 2: ") and words in str(err.value)


def test_configure_checks_every_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import flightlog

    cfg = tmp_path / "flightlog.toml"
    cfg.write_text("[teams.a]\n\n[[owners]]\nteam = 'a'\n\n[reliability]\nwindw = '7d'\n")
    monkeypatch.setenv("FLIGHTLOG_CONFIG", str(cfg))
    with pytest.raises(ConfigurationError, match=r"line 7: unknown setting 'windw'"):
        flightlog.configure(f"sqlite:///{tmp_path / 'f.db'}")
    cfg.write_text("[teams.a]\n\n[[owners]]\nteam = 'a'\n\n[reliability]\nwindow = '7d'\n")
    flightlog.configure(f"sqlite:///{tmp_path / 'f.db'}")
    flightlog.shutdown()
