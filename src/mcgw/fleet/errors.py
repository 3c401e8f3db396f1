"""Errors of the local fleet runtime."""

from __future__ import annotations

from mcgw.errors import McgwError


class FleetError(McgwError):
    """The local fleet cannot do what was asked."""


class NotRunnableError(FleetError):
    """Some Deployments cannot be run as local processes; nothing was started.

    Attributes:
        problems: one message per Deployment (or container) that cannot run.
    """

    def __init__(self, problems: tuple[str, ...]) -> None:
        super().__init__(
            "cannot run the fleet locally:\n" + "\n".join(f"  - {p}" for p in problems)
        )
        self.problems = problems


class PodStartError(FleetError):
    """A pod exited or did not accept connections in time; the fleet was stopped."""
