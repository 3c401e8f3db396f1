"""Errors of the Store API: only configuration can fail on purpose."""

from __future__ import annotations

from mcgw.errors import McgwError


class StoreError(McgwError):
    """The Store API cannot start as configured."""


class SettingError(StoreError):
    """An environment variable has a value the Store API cannot use."""

    def __init__(self, name: str, value: str, expected: str) -> None:
        super().__init__(f"environment variable {name}={value!r}: expected {expected}")
        self.name = name
        self.value = value
