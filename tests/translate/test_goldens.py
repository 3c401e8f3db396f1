"""Golden files: ``testdata/<case>/`` (a fleet directory) → ``testdata/<case>.out.yaml``.

Run ``pytest tests/translate --update-goldens`` to rewrite the goldens after an intended
change, then read the diff. Goldens are loaded strictly: any key added, missing or
changed fails, and the table part must decode into exactly the translated table.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from translate_support import load_case, render

from mcgw.ir import codec, table
from mcgw.translate import translator

TESTDATA = Path(__file__).parent / "testdata"
CASES = sorted(p.name for p in TESTDATA.iterdir() if (p / "fleet.yaml").is_file())


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, update_goldens: bool) -> None:
    result = translator.translate(load_case(TESTDATA / case))
    rendered = render(result)
    golden = TESTDATA / f"{case}.out.yaml"
    if update_goldens:
        golden.write_text(codec.to_yaml(rendered))
    expected = yaml.safe_load(golden.read_text())
    assert set(expected) == {"warnings", "statuses", "table"}
    assert codec.decode(table.RouteTable, expected["table"]) == result.table
    assert expected == rendered


@pytest.mark.parametrize("case", CASES)
def test_translation_is_deterministic(case: str) -> None:
    first = translator.translate(load_case(TESTDATA / case))
    second = translator.translate(load_case(TESTDATA / case))
    assert first == second
    assert first.table.version == codec.version_of(first.table)


def test_every_case_has_a_golden() -> None:
    # Last in the file, so that a run with --update-goldens has written them all.
    outs = sorted(p.name.removesuffix(".out.yaml") for p in TESTDATA.glob("*.out.yaml"))
    assert outs == CASES
