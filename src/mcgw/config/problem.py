"""How a model validator reports a rule broken across fields: a message and a fix.

Pydantic reports a plain ``ValueError`` as "Value error, ..." with nothing to act on.
Validators here raise :func:`invalid` instead; the loader renders the message, then the
fix, in the same shape as every other config error.
"""

from __future__ import annotations

from pydantic_core import PydanticCustomError

ERROR_TYPE = "mcgw_invalid"
"""The pydantic error type of problems raised through :func:`invalid`."""


def invalid(message: str, fix: str, *, at: str = "") -> PydanticCustomError:
    """A validation error for a model validator to raise.

    Args:
        message: what is wrong, naming the fields in their YAML spelling.
        fix: what the user should change.
        at: the field at fault, relative to the validated model, in YAML spelling
            (``"zone"``, ``"listeners[1].tls"``); pydantic would only name the model.

    Returns:
        The exception; ``raise invalid(...)``.
    """
    # Braces would be read as placeholders by pydantic's message template.
    safe = message.replace("{", "(").replace("}", ")")
    return PydanticCustomError(ERROR_TYPE, safe, {"fix": fix, "at": at})
