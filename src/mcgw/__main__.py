"""``python -m mcgw`` is the ``mcgw`` command."""

from __future__ import annotations

import sys

from mcgw.cli.main import main

sys.exit(main())
