"""The slow and hostile client flags of `mcgw up`/`mcgw serve`: parsed into ProxySettings."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcgw.cli import main
from mcgw.dataplane import settings

STORE = Path(__file__).resolve().parents[2] / "examples" / "store"


def _limits(*flags: str) -> settings.ProxySettings:
    args = main.build_parser().parse_args(["serve", "-f", str(STORE), *flags])
    return settings.ProxySettings(**main.client_limits(args))


def test_every_flag_reaches_its_setting() -> None:
    got = _limits(
        "--header-timeout",
        "5s",
        "--body-timeout",
        "2m",
        "--min-body-rate",
        "4KiB/s",
        "--idle-timeout",
        "90",
        "--max-connections",
        "500",
        "--max-pipelined",
        "4",
    )
    assert got.header_read_timeout_s == 5.0
    assert got.body_timeout_s == 120.0
    assert got.min_body_rate_bps == 4096
    assert got.idle_timeout_s == 90.0
    assert got.max_connections_per_listener == 500
    assert got.max_pipelined_requests == 4


def test_flags_not_given_keep_the_defaults() -> None:
    args = main.build_parser().parse_args(["up", "-f", str(STORE), "--idle-timeout", "5s"])
    assert main.client_limits(args) == {"idle_timeout_s": 5.0}
    got = settings.ProxySettings(**main.client_limits(args))
    assert got.header_read_timeout_s == settings.ProxySettings().header_read_timeout_s


@pytest.mark.parametrize(
    ("text", "rate"), [("1024", 1024), ("1KiB/s", 1024), ("64KB/s", 64_000), ("0", 0)]
)
def test_rates(text: str, rate: int) -> None:
    assert main.parse_rate(text) == rate


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--header-timeout", "0"], "expected a duration above zero"),
        (["--idle-timeout", "soon"], "is not an age"),
        (["--min-body-rate", "fast"], "is not a rate"),
        (["--max-pipelined", "0"], "expected a positive count"),
        (["--max-connections", "-3"], "expected a positive count"),
    ],
)
def test_bad_values_are_refused_with_the_reason(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main.build_parser().parse_args(["serve", "-f", str(STORE), *flags])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flags[0]}: " in err
    assert message in err
