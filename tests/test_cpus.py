"""CPU lists and pinning a helper from its environment (mcgw.cpus), in this process."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from mcgw import cpus


def test_parse() -> None:
    assert cpus.parse("0") == {0}
    assert cpus.parse("0,2-3") == {0, 2, 3}
    assert cpus.parse(" 1 , 3-4 ") == {1, 3, 4}


@pytest.mark.parametrize(
    "text", ["", "x", "1-x", "3-1", "1-0,0", "-1", "0-99999999", "99999999999999999999"]
)
def test_parse_refuses_what_names_no_cpu(text: str) -> None:
    with pytest.raises(ValueError):
        cpus.parse(text)


@pytest.fixture
def affinity() -> Iterator[set[int]]:
    """This process's CPUs, put back after the test (pin_from_env changes them)."""
    before = os.sched_getaffinity(0)
    yield set(before)
    os.sched_setaffinity(0, before)


@pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2,
    reason="needs two CPUs to tell a set affinity from the default",
)
def test_pin_from_env_sets_the_cpus_named(
    affinity: set[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    cpu = max(affinity)
    monkeypatch.setenv("MCGW_TEST_CPUS", str(cpu))
    cpus.pin_from_env("MCGW_TEST_CPUS", "test")
    assert os.sched_getaffinity(0) == {cpu}


@pytest.mark.parametrize("value", ["", "not-a-list", "4096", "0-99999999"])
def test_pin_from_env_leaves_the_cpus_alone_when_unset_or_bad(
    value: str,
    affinity: set[int],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MCGW_TEST_CPUS", value)
    cpus.pin_from_env("MCGW_TEST_CPUS", "test helper")
    assert os.sched_getaffinity(0) == affinity
    said = capsys.readouterr().err
    if value:  # a bad value is named, with who ignored it
        assert said.startswith(f"test helper: MCGW_TEST_CPUS={value!r} ignored: ")
    else:
        assert said == ""
