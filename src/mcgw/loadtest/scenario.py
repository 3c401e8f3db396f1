"""Scenarios and executors, k6's vocabulary for "who runs how many iterations, when".

Six executors, with k6's meaning:

* ``shared-iterations`` — ``vus`` VUs share ``iterations``, within ``maxDuration``;
* ``per-vu-iterations`` — each of ``vus`` VUs runs ``iterations``, within ``maxDuration``;
* ``constant-vus`` — ``vus`` VUs loop for ``duration``;
* ``ramping-vus`` — the number of looping VUs follows ``stages`` from ``startVUs``; VUs
  ramped down finish their iteration within ``gracefulRampDown``;
* ``constant-arrival-rate`` — ``rate`` iterations per ``timeUnit`` start for ``duration``,
  whether or not earlier ones finished (an open model), on ``preAllocatedVUs`` growing to
  ``maxVUs``; an iteration with no free VU at its time is dropped (``dropped_iterations``);
* ``ramping-arrival-rate`` — the same with a rate following ``stages`` from ``startRate``.

Every executor gives running iterations ``gracefulStop`` after its end, then interrupts
them. A scenario knows its schedule (pure functions here); the runner enforces it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Literal

from mcgw.loadtest import errors
from mcgw.loadtest import options as options_mod

Executor = Literal[
    "shared-iterations",
    "per-vu-iterations",
    "constant-vus",
    "ramping-vus",
    "constant-arrival-rate",
    "ramping-arrival-rate",
]
EXECUTORS: tuple[Executor, ...] = (
    "shared-iterations",
    "per-vu-iterations",
    "constant-vus",
    "ramping-vus",
    "constant-arrival-rate",
    "ramping-arrival-rate",
)

DEFAULT_MAX_DURATION_S = 600.0
"""k6's default ``maxDuration`` for iteration-based executors (10m)."""
DEFAULT_GRACEFUL_S = 30.0


@dataclass(frozen=True, slots=True)
class Stage:
    """Go linearly to ``target`` (VUs, or iterations per time unit) over ``duration_s``."""

    duration_s: float
    target: float


@dataclass(frozen=True, slots=True)
class Scenario:
    """One k6 scenario. Fields an executor does not use keep their defaults."""

    executor: Executor
    vus: int
    """VUs (closed models), ``startVUs`` for ramping-vus, preAllocatedVUs for arrival rates."""
    duration_s: float
    """``duration``, or ``maxDuration`` for iteration-based executors; for staged
    executors the sum of the stages."""
    iterations: int | None
    graceful_stop_s: float
    name: str = "default"
    stages: tuple[Stage, ...] = ()
    graceful_ramp_down_s: float = DEFAULT_GRACEFUL_S
    rate: float = 0.0
    """constant-arrival-rate: iterations per ``time_unit_s``; ramping: ``startRate``."""
    time_unit_s: float = 1.0
    max_vus: int = 0
    start_time_s: float = 0.0
    exec_name: str = "default"
    """The exported function each iteration calls (``exec``)."""
    tags: tuple[tuple[str, str], ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    share_index: int = 0
    share_count: int = 1
    """With ``--workers``: this copy runs share ``share_index`` of ``share_count``."""

    @property
    def max_duration_s(self) -> float:
        """The hard bound on the scenario: duration plus graceful stop."""
        return self.duration_s + self.graceful_stop_s

    @property
    def peak_vus(self) -> int:
        """The most VUs the scenario may use (k6's ``max VUs`` of the header)."""
        if self.executor == "ramping-vus":
            peak = max([self.vus, *(math.ceil(s.target) for s in self.stages)])
            return _share(peak, self.share_index, self.share_count)
        if self.executor in ("constant-arrival-rate", "ramping-arrival-rate"):
            return max(self.vus, self.max_vus)
        return self.vus

    @property
    def open_model(self) -> bool:
        return self.executor in ("constant-arrival-rate", "ramping-arrival-rate")

    def target_vus(self, t: float) -> int:
        """ramping-vus: the VUs that should be looping ``t`` seconds into the scenario
        (this share's part of them under ``--workers``)."""
        return _share(self._target_total(t), self.share_index, self.share_count)

    def _target_total(self, t: float) -> int:
        value = float(self.vus)
        start = 0.0
        for stage in self.stages:
            end = start + stage.duration_s
            if t < end and stage.duration_s > 0:
                frac = (t - start) / stage.duration_s
                return int(value + (stage.target - value) * frac)
            value, start = stage.target, end
        return int(value)

    def arrivals(self) -> Iterator[float]:
        """Arrival-rate executors: the start time (s from the scenario's start) of each
        iteration, in order, while it is before the scenario's duration (under
        ``--workers``, every ``share_count``-th of them)."""
        for k, t in enumerate(self._all_arrivals()):
            if k % self.share_count == self.share_index:
                yield t

    def share(self, index: int, count: int) -> Scenario | None:
        """This scenario's part for worker ``index`` of ``count``; None when it gets no
        work (fewer VUs or iterations than workers)."""
        if count == 1:
            return self
        ex = self.executor
        fields: dict[str, object] = {"share_index": index, "share_count": count}
        if ex in ("shared-iterations", "per-vu-iterations", "constant-vus"):
            vus = _share(self.vus, index, count)
            if vus == 0:
                return None
            fields["vus"] = vus
            if ex == "shared-iterations":
                iters = _share(self.iterations or 0, index, count)
                if iters == 0:
                    return None
                fields["iterations"] = iters
                fields["vus"] = min(vus, iters)
        elif ex == "ramping-vus":
            fields["vus"] = self.vus  # startVUs: shared by target_vus
        else:
            fields["vus"] = max(1, _share(self.vus, index, count))
            fields["max_vus"] = max(1, _share(self.max_vus, index, count))
        return replace(self, **fields)  # type: ignore[arg-type]

    def _all_arrivals(self) -> Iterator[float]:
        if self.executor == "constant-arrival-rate":
            if self.rate <= 0:
                return
            interval = self.time_unit_s / self.rate
            k = 0
            while (t := k * interval) < self.duration_s:
                yield t
                k += 1
            return
        # ramping-arrival-rate: iteration n starts when the integral of the rate reaches n.
        # Within a stage the rate is r0 + (r1 - r0)·τ/T, so its integral is quadratic in τ.
        done = 0.0  # iterations due before the current stage
        start = 0.0
        r0 = self.rate / self.time_unit_s
        n = 0
        for stage in self.stages:
            r1 = stage.target / self.time_unit_s
            big_t = stage.duration_s
            in_stage = (r0 + r1) / 2 * big_t
            while n < done + in_stage - 1e-9:
                want = n - done
                a = (r1 - r0) / (2 * big_t) if big_t > 0 else 0.0
                if abs(a) < 1e-12:
                    tau = want / r0 if r0 > 0 else big_t
                else:
                    tau = (-r0 + math.sqrt(max(r0 * r0 + 4 * a * want, 0.0))) / (2 * a)
                yield start + min(tau, big_t)
                n += 1
            done += in_stage
            start += big_t
            r0 = r1


def _share(total: int, index: int, count: int) -> int:
    """Worker ``index``'s part of ``total`` split ``count`` ways (sums to ``total``)."""
    return total // count + (1 if index < total % count else 0)


def from_options(opts: options_mod.LoadOptions) -> Scenario:
    """The single scenario k6 derives from the shortcut options (``--vus``,
    ``--duration``, ``--iterations``, ``--stage``)."""
    if opts.stages:
        stages = tuple(Stage(d, t) for d, t in opts.stages)
        return Scenario(
            "ramping-vus",
            opts.vus,
            sum(s.duration_s for s in stages),
            None,
            opts.graceful_stop_s,
            stages=stages,
        )
    if opts.iterations is None and opts.duration_s is not None:
        return Scenario("constant-vus", opts.vus, opts.duration_s, None, opts.graceful_stop_s)
    # Iterations given, or nothing at all (k6 then runs 1 iteration of 1 VU).
    iterations = opts.iterations if opts.iterations is not None else 1
    vus = min(opts.vus, iterations)
    max_duration = opts.duration_s if opts.duration_s is not None else DEFAULT_MAX_DURATION_S
    return Scenario("shared-iterations", vus, max_duration, iterations, opts.graceful_stop_s)


def _duration(value: object, where: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) / 1000.0  # k6: a bare number in a script is milliseconds
    if isinstance(value, str):
        try:
            return options_mod.parse_duration(value)
        except errors.LoadError as exc:
            raise errors.LoadError(f"{where}: {exc}") from exc
    raise errors.LoadError(f"{where}: expected a duration such as '30s', got {value!r}")


def _int(value: object, where: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise errors.LoadError(f"{where}: expected an integer, got {value!r}")
    if value < minimum:
        raise errors.LoadError(f"{where}: must be at least {minimum}, got {value!r}")
    return int(value)


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise errors.LoadError(f"{where}: expected a non-negative number, got {value!r}")
    return float(value)


def parse_stages(raw: object, where: str) -> tuple[Stage, ...]:
    if not isinstance(raw, list) or not raw:
        raise errors.LoadError(f"{where}: expected a non-empty list of {{duration, target}}")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise errors.LoadError(f"{where}[{i}]: expected {{duration, target}}")
        out.append(
            Stage(
                _duration(item.get("duration"), f"{where}[{i}].duration"),
                _number(item.get("target", 0), f"{where}[{i}].target"),
            )
        )
    return tuple(out)


_KNOWN_KEYS: dict[str, frozenset[str]] = {
    "shared-iterations": frozenset({"vus", "iterations", "maxDuration"}),
    "per-vu-iterations": frozenset({"vus", "iterations", "maxDuration"}),
    "constant-vus": frozenset({"vus", "duration"}),
    "ramping-vus": frozenset({"startVUs", "stages", "gracefulRampDown"}),
    "constant-arrival-rate": frozenset(
        {"rate", "timeUnit", "duration", "preAllocatedVUs", "maxVUs"}
    ),
    "ramping-arrival-rate": frozenset(
        {"startRate", "timeUnit", "stages", "preAllocatedVUs", "maxVUs"}
    ),
}
_COMMON_KEYS = frozenset({"executor", "startTime", "gracefulStop", "exec", "env", "tags"})


def from_config(name: str, raw: Mapping[str, object]) -> Scenario:
    """One entry of k6's ``options.scenarios``.

    Raises:
        errors.LoadError: unknown executor or option, or a bad value; names the scenario.
    """
    where = f"scenarios.{name}"
    executor = raw.get("executor")
    if executor not in EXECUTORS:
        raise errors.LoadError(
            f"{where}.executor: {executor!r} is not supported; use one of {', '.join(EXECUTORS)}"
        )
    unknown = set(raw) - _COMMON_KEYS - _KNOWN_KEYS[str(executor)]
    if unknown:
        raise errors.LoadError(f"{where}: unknown option(s) {', '.join(sorted(unknown))}")

    def dur(key: str, default: float) -> float:
        return _duration(raw[key], f"{where}.{key}") if key in raw else default

    def strmap(key: str) -> tuple[tuple[str, str], ...]:
        value = raw.get(key) or {}
        if not isinstance(value, Mapping):
            raise errors.LoadError(f"{where}.{key}: expected an object")
        return tuple((str(k), str(v)) for k, v in value.items())

    common: dict[str, object] = {
        "name": name,
        "graceful_stop_s": dur("gracefulStop", DEFAULT_GRACEFUL_S),
        "start_time_s": dur("startTime", 0.0),
        "exec_name": str(raw.get("exec", "default")),
        "tags": strmap("tags"),
        "env": strmap("env"),
    }
    ex: Executor = executor
    if ex in ("shared-iterations", "per-vu-iterations"):
        vus = _int(raw.get("vus", 1), f"{where}.vus", 1)
        iters = _int(raw.get("iterations", 1), f"{where}.iterations", 1)
        if ex == "shared-iterations" and iters < vus:
            vus = iters  # k6 caps VUs at the iterations they share
        return Scenario(
            ex,
            vus,
            dur("maxDuration", DEFAULT_MAX_DURATION_S),
            iters,
            **common,  # type: ignore[arg-type]
        )
    if ex == "constant-vus":
        if "duration" not in raw:
            raise errors.LoadError(f"{where}.duration is required for constant-vus")
        vus = _int(raw.get("vus", 1), f"{where}.vus", 1)
        return Scenario(ex, vus, dur("duration", 0.0), None, **common)  # type: ignore[arg-type]
    if ex == "ramping-vus":
        stages = parse_stages(raw.get("stages"), f"{where}.stages")
        return Scenario(
            ex,
            _int(raw.get("startVUs", 1), f"{where}.startVUs"),
            sum(s.duration_s for s in stages),
            None,
            stages=stages,
            graceful_ramp_down_s=dur("gracefulRampDown", DEFAULT_GRACEFUL_S),
            **common,  # type: ignore[arg-type]
        )
    pre = _int(raw.get("preAllocatedVUs", 1), f"{where}.preAllocatedVUs", 1)
    max_vus = _int(raw.get("maxVUs", pre), f"{where}.maxVUs", 1)
    if max_vus < pre:
        max_vus = pre
    time_unit = dur("timeUnit", 1.0)
    if ex == "constant-arrival-rate":
        if "duration" not in raw or "rate" not in raw:
            raise errors.LoadError(f"{where}: rate and duration are required")
        return Scenario(
            ex,
            pre,
            dur("duration", 0.0),
            None,
            rate=_number(raw["rate"], f"{where}.rate"),
            time_unit_s=time_unit,
            max_vus=max_vus,
            **common,  # type: ignore[arg-type]
        )
    stages = parse_stages(raw.get("stages"), f"{where}.stages")
    return Scenario(
        ex,
        pre,
        sum(s.duration_s for s in stages),
        None,
        stages=stages,
        rate=_number(raw.get("startRate", 0), f"{where}.startRate"),
        time_unit_s=time_unit,
        max_vus=max_vus,
        **common,  # type: ignore[arg-type]
    )
