"""k6's expected statuses: what decides ``http_req_failed`` and ``expected_response``.

``http.expectedStatuses(200, {min: 400, max: 499})`` makes a matcher of status codes;
``http.setResponseCallback(m)`` (per VU) or ``params.responseCallback`` (per request,
each redirect hop included) selects the one a response is judged by. As in k6:

* the default is 200–399;
* a request that failed without a response is judged by status 0;
* ``null`` (and, in mcgw, ``undefined``) turns judging off: the response gets no
  ``expected_response`` tag and no ``http_req_failed`` sample at all (so it is in
  neither ``http_req_duration{expected_response:true}`` nor the failure rate).

Only matchers made by ``expectedStatuses`` are accepted (k6 does not take a JS
function either). The default matcher is the one object :data:`DEFAULT`: the runner
keeps its batched fast path for it and judges others per request.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from mcgw.loadtest import errors


class StatusesError(errors.LoadError):
    """An ``expectedStatuses`` argument or a response callback that k6 would refuse."""


@dataclass(frozen=True, slots=True)
class ExpectedStatuses:
    """Status codes counted as expected: exact codes and inclusive ranges."""

    exact: frozenset[int]
    ranges: tuple[tuple[int, int], ...]

    def __call__(self, status: int) -> bool:
        if status in self.exact:
            return True
        return any(low <= status <= high for low, high in self.ranges)

    def to_spec(self) -> list[object]:
        """The JSON form that crosses between JS and Python (the arguments again)."""
        return [*sorted(self.exact), *({"min": lo, "max": hi} for lo, hi in self.ranges)]


DEFAULT = ExpectedStatuses(frozenset(), ((200, 399),))
"""k6's default: 200–399."""

_MARK = "__k6expected"
"""The key of a matcher's JSON form (a JS ``ExpectedStatuses`` object serialised)."""


def _integer(value: object) -> int | None:
    # k6 checks with Number.isInteger: 200 and 200.0 are integers, "200" and 200.5 not.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def expected_statuses(*args: object) -> ExpectedStatuses:
    """k6's ``http.expectedStatuses(...)``: integers or ``{min, max}`` objects.

    Raises:
        StatusesError: no argument, or one that is neither (k6's messages).
    """
    if not args:
        raise StatusesError("expectedStatuses: no arguments")
    exact: set[int] = set()
    ranges: list[tuple[int, int]] = []
    for number, arg in enumerate(args, 1):
        code = _integer(arg)
        if code is not None:
            exact.add(code)
            continue
        if not isinstance(arg, Mapping) or "min" not in arg or "max" not in arg:
            raise StatusesError(
                f"argument number {number} to expectedStatuses was neither an integer nor "
                "an object like {min:100, max:329}"
            )
        low, high = _integer(arg["min"]), _integer(arg["max"])
        if low is None or high is None:
            raise StatusesError(
                f"both min and max need to be integers for argument number {number}"
            )
        ranges.append((low, high))
    return ExpectedStatuses(frozenset(exact), tuple(ranges))


def callback(value: object) -> ExpectedStatuses | None:
    """A response callback as a script gives it: a matcher, its JSON form, or None.

    Raises:
        StatusesError: anything else (a function, a number…), as k6 refuses it.
    """
    if value is None or isinstance(value, ExpectedStatuses):
        return value
    if isinstance(value, Mapping) and isinstance(value.get(_MARK), list):
        return expected_statuses(*value[_MARK])
    raise StatusesError("unsupported responseCallback, expected http.expectedStatuses(...)")
