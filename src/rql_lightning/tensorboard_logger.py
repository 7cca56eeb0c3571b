"""Lightning's TensorBoard logger, whose refused event-file writes (reported by TensorBoard's background writer at a
later call, wrapped in whatever that raises) are one :class:`~rql_lightning.file_writes.WriteRefusedError` line."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.summary.writer.event_file_writer import _AsyncWriterThread

from rql_lightning.checkpointing import last_good_line
from rql_lightning.file_writes import WriteRefusedError, os_error_in, refusal


def _refusing(method: Callable) -> Callable:
    """The logger's ``method``, whose refused write of the event file raises one :class:`WriteRefusedError`."""

    @functools.wraps(method)
    def wrapped(self: RunTensorBoardLogger, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except WriteRefusedError:
            raise
        except Exception as err:
            cause = os_error_in(err)
            if cause is None:
                raise
            writer = getattr(getattr(self._experiment, "file_writer", None), "event_writer", None)
            path = os.fsdecode(cause.filename or getattr(writer, "_file_name", None) or self.log_dir)
            state = last_good_line(self.checkpoint_dir)
            raise WriteRefusedError(refusal("the TensorBoard event file", path, cause, state)) from None

    return wrapped


class RunTensorBoardLogger(TensorBoardLogger):
    """``TensorBoardLogger`` (same arguments) plus ``checkpoint_dir``: where the run's checkpoints go, to name the
    last good one when the event file cannot be written."""

    def __init__(self, *args: Any, checkpoint_dir: str | Path | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _quiet_writer_threads()
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else Path(self.root_dir)

    experiment = property(_refusing(TensorBoardLogger.experiment.fget))
    log_metrics = _refusing(TensorBoardLogger.log_metrics)
    log_hyperparams = _refusing(TensorBoardLogger.log_hyperparams)
    save = _refusing(TensorBoardLogger.save)

    def finalize(self, status: str) -> None:
        """A run that failed (possibly for this very file) ends without a second report; any other ends with
        its events on disk or one line saying why not."""
        if status != "failed" or self._experiment is None:
            return _refusing(TensorBoardLogger.finalize)(self, status)
        with suppress(Exception):  # the run's failure is what gets reported
            super().finalize(status)


def _quiet_writer_threads() -> None:
    """TensorBoard's writer thread dies on a refused write and Python prints its traceback; the logger reports
    that error itself, as one line, at its next call. Other threads' errors print as before."""
    previous = threading.excepthook
    if getattr(previous, "quiets", None) is _AsyncWriterThread:
        return

    def hook(args: threading.ExceptHookArgs) -> None:
        if not (isinstance(args.thread, _AsyncWriterThread) and isinstance(args.exc_value, OSError)):
            previous(args)

    hook.quiets = _AsyncWriterThread
    threading.excepthook = hook
