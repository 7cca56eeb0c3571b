"""Stopping by a signal: SIGTERM, SIGUSR1 or Ctrl-C saves ``last.ckpt`` at the step reached and says how to resume.

All go through Lightning's SIGTERM path (every DDP rank stops at the same step boundary) and ``on_exception`` saves.
SIGUSR1 does this outside SLURM only (SLURM's requeue keeps it). SIGTERM and SIGUSR1 exit 0, Ctrl-C 130; a second
Ctrl-C quits at once without saving (atomic writes keep the previous checkpoint intact).
"""

from __future__ import annotations

import os
import signal
import threading

import lightning as L
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from rql_lightning.checkpointing import checkpoint_dir, resume_command


class PreemptionCheckpoint(L.Callback):
    """Saves ``last.ckpt`` in the run's checkpoint directory, where ``resume=auto`` looks."""

    def __init__(self) -> None:
        self.signal_received: int | None = None
        self._trainer: L.Trainer | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # After Lightning has recorded the process's handlers (at fit start): its teardown puts them back,
        # on success and on an exception alike, so ours never outlive the fit.
        self._trainer, self.signal_received = trainer, None
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._on_signal)
            if not SLURMEnvironment.detect():
                signal.signal(signal.SIGUSR1, self._on_signal)

    def _on_signal(self, signum: int, frame) -> None:
        if signum == signal.SIGINT and self.signal_received == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: quit now, whatever is being written
        self.signal_received = signum
        if signum == signal.SIGINT:  # os.write, not print: a handler may run in the middle of a print
            os.write(2, b"\nCtrl-C: saving a checkpoint at the end of this step (Ctrl-C again quits without it)\n")
        if self._trainer is not None:
            self._trainer._signal_connector.received_sigterm = True  # Lightning's stop-at-step-boundary flag

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        path = checkpoint_dir(trainer) / "last.ckpt"
        trainer.save_checkpoint(path)
        interrupted = self.signal_received == signal.SIGINT
        rank_zero_info(
            f"{'interrupted' if interrupted else 'preempted'} at step {trainer.global_step}: saved {path}; "
            f"resume with: {resume_command(trainer.default_root_dir)}"
        )
        if interrupted:
            exception.code = 128 + signal.SIGINT  # a shell's code for Ctrl-C; Lightning re-raises this very exception
