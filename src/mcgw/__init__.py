"""mcgw: a multi-cluster L7 gateway for the Kubernetes Gateway API.

The spine is config models → translator (pure) → immutable route table (IR) → data
plane; the local fleet, the load tester and log analytics are siblings, the CLI sits on
top. See the README and each subpackage's docstring.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
