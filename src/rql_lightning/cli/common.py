"""The one path every command reports a user's mistake through: ``error: <what>; <fix>`` and exit code 2."""

from __future__ import annotations

import signal
import sys
import warnings
from collections.abc import Callable
from typing import TypeVar

from rql_lightning.errors import UserError

T = TypeVar("T")
USAGE_EXIT_CODE = 2
INTERRUPTED_EXIT_CODE = 128 + signal.SIGINT  # a shell's code for a command stopped by Ctrl-C


def fail(message: str) -> None:
    """Print one ``error:`` line and exit 2 (no traceback)."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(USAGE_EXIT_CODE) from None


def interrupted() -> None:
    """Print one line for a Ctrl-C that stopped without a checkpoint of its own and exit 130 (no traceback)."""
    print(
        "interrupted: stopped without saving this step; the run's last.ckpt, if any, is the previous checkpoint "
        "and intact (resume=auto continues from it)",
        file=sys.stderr,
        flush=True,
    )
    raise SystemExit(INTERRUPTED_EXIT_CODE) from None


def user_errors_as_one_line(fn: Callable[[], T]) -> T:
    """Run ``fn``; a :class:`UserError` (raised directly or inside Hydra's instantiation) becomes one line, and
    so does a Ctrl-C that stopped it without saving: before training, or a second one during the save
    (Lightning answers a Ctrl-C it catches with ``sys.exit(1)``)."""
    from hydra.errors import InstantiationException

    try:
        return fn()
    except KeyboardInterrupt:
        interrupted()
    except SystemExit as exit_:
        if exit_.code == 1 and isinstance(exit_.__context__, KeyboardInterrupt):
            interrupted()
        raise
    except UserError as err:
        fail(str(err))
    except InstantiationException as err:
        cause = err.__cause__ or err.__context__
        if isinstance(cause, UserError):
            fail(str(cause))
        raise
    raise AssertionError("unreachable")


def silence_unactionable_warnings() -> None:
    """Noise a user cannot act on: OGBench's float64 space bounds, GLFW without a display (MuJoCo falls
    back to offscreen rendering), and a Lightning-internal deprecation."""
    warnings.filterwarnings("ignore", message=".*precision lowered by casting to float32.*")
    warnings.filterwarnings("ignore", message=".*DISPLAY environment variable is missing.*")
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")
