"""Lightning's TensorBoard logger, with event-file writes the machine refuses as one line: TensorBoard's background
writer reports a failure at a later call, wrapped in whatever that raises; here it is a
:class:`~rql_lightning.file_writes.WriteRefusedError` naming the event file, the OS error and the last good checkpoint.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger

from rql_lightning.checkpointing import last_good_line
from rql_lightning.file_writes import WriteRefusedError, os_error_in, refusal


class RunTensorBoardLogger(TensorBoardLogger):
    """``TensorBoardLogger`` (same arguments) plus ``checkpoint_dir``: where the run's checkpoints go, to name the
    last good one when the event file cannot be written."""

    def __init__(self, *args: Any, checkpoint_dir: str | Path | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _quiet_writer_threads()
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else Path(self.root_dir)

    @contextmanager
    def _refusals(self) -> Iterator[None]:
        try:
            yield
        except WriteRefusedError:
            raise
        except Exception as err:
            cause = os_error_in(err)
            if cause is None:
                raise
            path = os.fsdecode(cause.filename) if cause.filename else self._event_file()
            state = last_good_line(self.checkpoint_dir)
            raise WriteRefusedError(refusal("the TensorBoard event file", path, cause, state)) from None

    def _event_file(self) -> str:
        writer = getattr(getattr(self._experiment, "file_writer", None), "event_writer", None)
        return getattr(writer, "_file_name", None) or self.log_dir

    @property
    def experiment(self) -> Any:
        with self._refusals():
            return super().experiment

    def log_metrics(self, metrics: Any, step: int | None = None) -> None:
        with self._refusals():
            super().log_metrics(metrics, step)

    def log_hyperparams(self, params: Any, metrics: Any = None, step: int | None = None) -> None:
        with self._refusals():
            super().log_hyperparams(params, metrics, step)

    def save(self) -> None:
        with self._refusals():
            super().save()

    def finalize(self, status: str) -> None:
        """A run that failed (possibly for this very file) ends without a second report; any other ends with
        its events on disk or one line saying why not."""
        if status == "failed" and self._experiment is not None:
            try:
                super().finalize(status)
            except Exception:  # noqa: BLE001 (the run's failure is what gets reported)
                pass
            return
        with self._refusals():
            super().finalize(status)


def _quiet_writer_threads() -> None:
    """TensorBoard's writer thread dies on a refused write and Python prints its traceback; the logger reports
    that error itself, as one line, at its next call. Other threads' errors print as before."""
    from tensorboard.summary.writer.event_file_writer import _AsyncWriterThread

    previous = threading.excepthook
    if getattr(previous, "quiets", None) is _AsyncWriterThread:
        return

    def hook(args: threading.ExceptHookArgs) -> None:
        if not (isinstance(args.thread, _AsyncWriterThread) and isinstance(args.exc_value, OSError)):
            previous(args)

    hook.quiets = _AsyncWriterThread
    threading.excepthook = hook
