"""Errors the CLI reports as one line (``error: ...``, exit code 2) instead of a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem in what the user asked for; the message names the problem and the fix."""


class NonFiniteError(UserError, RuntimeError):
    """A loss or gradient became NaN/inf; the message names the step and the term."""
