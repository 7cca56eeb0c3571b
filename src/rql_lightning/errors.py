"""What the user is told: errors the CLI reports as one line (``error: ...``, exit code 2) instead of a traceback,
and the warnings nobody can act on, silenced."""

from __future__ import annotations

import warnings


class UserError(Exception):
    """A problem in what the user asked for; the message names the problem and the fix."""


class NonFiniteError(UserError, RuntimeError):
    """A loss or gradient became NaN/inf; the message names the step and the term."""


def silence_unactionable_warnings() -> None:
    """Noise a user cannot act on: OGBench's float64 bounds, GLFW without a display, a Lightning deprecation."""
    warnings.filterwarnings("ignore", message=".*precision lowered by casting to float32.*")
    warnings.filterwarnings("ignore", message=".*DISPLAY environment variable is missing.*")
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")
