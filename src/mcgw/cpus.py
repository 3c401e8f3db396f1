"""CPU lists (``0,2-3``), and pinning a helper process to the one its environment names.

The access log's writer (``MCGW_LOG_WRITER_CPUS``) and the log indexer
(``MCGW_LOG_INDEXER_CPUS``) run where the gateway runs by default: they inherit its
affinity, so a deployment's pinning holds and their CPU is paid where the gateway's is.
A gateway pinned to a core can send them to others, so that the core is the requests'
alone: on one shared core their work slows requests past about half the core's load
(README.md, "The access log's cost").
"""

from __future__ import annotations

import os
import sys

WRITER_ENV = "MCGW_LOG_WRITER_CPUS"
INDEXER_ENV = "MCGW_LOG_INDEXER_CPUS"


def parse(text: str) -> set[int]:
    """``0,2-3`` → {0, 2, 3}.

    Raises:
        ValueError: not a CPU list.
    """
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    if not cpus:
        raise ValueError(f"{text!r} names no CPU")
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
