"""``python -m mcgw.store``: run one Store API process, configured like a pod."""

from __future__ import annotations

from mcgw.store import server

# The process boundary, like the CLI: the only place an exit code becomes an exit.
raise SystemExit(server.main())
