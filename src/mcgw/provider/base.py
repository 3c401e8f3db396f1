"""The provider protocol: an async stream of complete snapshots or errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from mcgw.config import load


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A successfully loaded set of resources."""

    loaded: load.Loaded


@dataclass(frozen=True, slots=True)
class Rejected:
    """A reload that failed; the previous snapshot stays in force."""

    error: load.ConfigError


Event = Snapshot | Rejected


class Provider(Protocol):
    def events(self) -> AsyncIterator[Event]:
        """Yield the first snapshot (or rejection), then one event per change."""
        ...
