"""Scenarios and executors, k6's vocabulary for "who runs how many iterations, when".

Only the two executors the CLI options reach exist so far: ``constant-vus`` (N VUs loop
for a duration) and ``shared-iterations`` (N VUs share a fixed number of iterations, with
a maximum duration). A scenario knows its limits; the runner enforces them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mcgw.loadtest import options as options_mod

Executor = Literal["constant-vus", "shared-iterations"]

DEFAULT_MAX_DURATION_S = 600.0
"""k6's default ``maxDuration`` for iteration-based executors (10m)."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """One k6 scenario (mcgw runs exactly one, named ``default`` like k6's)."""

    executor: Executor
    vus: int
    duration_s: float
    """``constant-vus``: how long VUs start new iterations. ``shared-iterations``: the
    maxDuration."""
    iterations: int | None
    graceful_stop_s: float
    name: str = "default"

    @property
    def max_duration_s(self) -> float:
        """The hard bound on the run: duration plus graceful stop."""
        return self.duration_s + self.graceful_stop_s


def from_options(opts: options_mod.LoadOptions) -> Scenario:
    """Pick the executor k6 would for these options."""
    if opts.iterations is None and opts.duration_s is not None:
        return Scenario("constant-vus", opts.vus, opts.duration_s, None, opts.graceful_stop_s)
    # Iterations given, or nothing at all (k6 then runs 1 iteration of 1 VU).
    iterations = opts.iterations if opts.iterations is not None else 1
    vus = min(opts.vus, iterations)
    max_duration = opts.duration_s if opts.duration_s is not None else DEFAULT_MAX_DURATION_S
    return Scenario("shared-iterations", vus, max_duration, iterations, opts.graceful_stop_s)
