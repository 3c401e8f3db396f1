"""CPU lists (``0,2-3``), and pinning a helper process to the one its environment names.

The access log's writer (``MCGW_LOG_WRITER_CPUS``) and the log indexer
(``MCGW_LOG_INDEXER_CPUS``) run where the gateway runs by default: they inherit its
affinity, so a deployment's pinning holds and their CPU is paid where the gateway's is.
A gateway pinned to a core can send them to others, so that the core is the requests'
alone: on one shared core their work slows requests past about half the core's load
(docs/access-log-cost.md).
"""

from __future__ import annotations

import os
import sys

WRITER_ENV = "MCGW_LOG_WRITER_CPUS"
INDEXER_ENV = "MCGW_LOG_INDEXER_CPUS"


MAX_CPU = 1 << 16
"""CPU numbers from here on are refused rather than expanded (Linux's own limit,
``NR_CPUS``, is 8192 at most): ``0-99999999`` must not build a set of a hundred million."""


def parse(text: str) -> set[int]:
    """``0,2-3`` → {0, 2, 3}.

    Raises:
        ValueError: not a CPU list: a part that is not a number or a range, a range
            whose end comes before its start, a CPU number from :data:`MAX_CPU` on.
    """
    cpus: set[int] = set()
    for part in text.split(","):
        low_text, dash, high_text = part.strip().partition("-")
        low = int(low_text)
        high = int(high_text) if dash else low
        if not 0 <= low <= high < MAX_CPU:
            raise ValueError(f"{part.strip()!r} is not a CPU or a range of CPUs")
        cpus.update(range(low, high + 1))
    return cpus


def pin_from_env(variable: str, who: str) -> None:
    """Run this process on the CPUs ``$variable`` lists, if it is set. A value that is not
    a CPU list, or names no CPU this process may use, is reported on stderr (as ``who``)
    and ignored: a helper must not die of its placement."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return
    try:
        os.sched_setaffinity(0, parse(text))
    except (ValueError, OSError) as exc:
        print(f"{who}: {variable}={text!r} ignored: {exc}", file=sys.stderr)
