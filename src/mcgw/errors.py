"""The root of every error mcgw raises on purpose.

This is a leaf module: it imports nothing from mcgw, so every layer may import it.
Each subpackage derives its own errors from :class:`McgwError` so that callers can
catch "anything mcgw meant to tell me" without catching programming bugs.
"""

from __future__ import annotations


class McgwError(Exception):
    """An expected failure with a message meant for the user."""
