"""Golden error messages: each testdata/invalid/<case>.yaml|json fails with <case>.err.

The expected text is what a user reads (file, document, object, YAML path, fix), so any
change to it shows up here. Rewrite the .err files with ``pytest --update-goldens`` and
review the diff.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mcgw.config import load

INVALID = Path(__file__).parent / "testdata" / "invalid"
CASES = sorted(p for p in INVALID.iterdir() if p.suffix in (".yaml", ".json"))


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 10


@pytest.mark.parametrize("case", CASES, ids=[p.stem for p in CASES])
def test_invalid_case(case: Path, update_goldens: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    # Relative paths keep the messages free of this machine's directories.
    monkeypatch.chdir(INVALID)
    with pytest.raises(load.ConfigError) as caught:
        load.load([Path(case.name)])
    got = str(caught.value) + "\n"
    golden = case.with_suffix(".err")
    if update_goldens:
        golden.write_text(got, encoding="utf-8")
    assert golden.exists(), f"no golden for {case.name}; run pytest --update-goldens"
    assert got == golden.read_text(encoding="utf-8")
    # str() is the issues, one per line, in order.
    assert got.splitlines() == [str(issue) for issue in caught.value.issues]
