"""Helpers for the translator tests: load a case directory, render a result as plain data.

A case directory has the layout of ``examples/store``: a ``fleet.yaml`` and one folder of
manifests per cluster, read by the real loader (``mcgw.config.load``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcgw.config import load, resources
from mcgw.ir import codec
from mcgw.translate import translator


def load_case(case: Path) -> resources.Resources:
    """Resources of one case directory."""
    return load.load([case]).resources


def render(result: translator.Result) -> dict[str, Any]:
    """What a golden file holds: warnings, statuses and the route table, as plain data."""
    return {
        "warnings": list(result.warnings),
        "statuses": codec.encode(result.statuses),
        "table": codec.encode(result.table),
    }
