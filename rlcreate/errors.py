"""One base class for every user mistake.

Every error that means "the input you gave is wrong" (a recipe value, a level file, a reward name,
a run folder, a missing optional tool) derives from :class:`UserError`. The command line catches
``UserError`` once and prints one ``error:`` line with exit code 2; anything else is a bug in
rlcreate and keeps its traceback. Messages name the value, the rule and the fix.
"""

from __future__ import annotations

__all__ = ["UserError", "MissingPackageError"]


class UserError(ValueError):
    """A mistake in what the user gave rlcreate; the message says what to do instead."""


class MissingPackageError(UserError, RuntimeError):
    """An optional data/model package is not installed; the message says how to install it."""
