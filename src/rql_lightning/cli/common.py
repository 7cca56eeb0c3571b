"""The one path every command reports a user's mistake through: ``error: <what>; <fix>`` and exit code 2."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

from rql_lightning.errors import UserError

T = TypeVar("T")
USAGE_EXIT_CODE = 2
INTERRUPTED_EXIT_CODE = 128 + signal.SIGINT  # a shell's code for a command stopped by Ctrl-C


INTERRUPTED = (  # a Ctrl-C that stopped without a checkpoint of its own
    "interrupted: stopped without saving this step; the run's last.ckpt, if any, is the previous checkpoint "
    "and intact (resume=auto continues from it)"
)


def fail(message: str, code: int = USAGE_EXIT_CODE) -> NoReturn:
    """Print one line (``error: <message>``, or :data:`INTERRUPTED` as is) and exit, without a traceback."""
    print(message if message == INTERRUPTED else f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code) from None


def user_errors_as_one_line(fn: Callable[[], T]) -> T:
    """Run ``fn``; a :class:`UserError` (also inside Hydra's instantiation) or an unsaved Ctrl-C becomes one line."""
    from hydra.errors import InstantiationException

    try:
        return fn()
    except KeyboardInterrupt:
        fail(INTERRUPTED, INTERRUPTED_EXIT_CODE)
    except SystemExit as exit_:
        if exit_.code == 1 and isinstance(exit_.__context__, KeyboardInterrupt):
            fail(INTERRUPTED, INTERRUPTED_EXIT_CODE)
        raise
    except UserError as err:
        fail(str(err))
    except InstantiationException as err:
        cause = err.__cause__ or err.__context__
        if isinstance(cause, UserError):
            fail(str(cause))
        raise
