"""Preemption: on SIGTERM or SIGUSR1, save a resumable checkpoint and stop cleanly.

Lightning turns SIGTERM into ``SIGTERMException`` at the next step boundary; we save
``<dirpath>/last.ckpt`` there. SIGUSR1 (the usual "time is almost up" signal of clusters)
does the same outside SLURM; on SLURM Lightning keeps SIGUSR1 for its own requeue.
``rql-train ... resume=auto`` in the same run directory continues from that checkpoint.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import lightning as L
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException


class Preempted(SIGTERMException):
    """Raised after the preemption checkpoint is written; the CLI exits 0 on it."""


class PreemptionCheckpoint(L.Callback):
    def __init__(self, dirpath: str, filename: str = "last.ckpt") -> None:
        self.path = Path(dirpath).expanduser() / filename
        self.signal_received: int | None = None
        self.saved_path: Path | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not SLURMEnvironment.detect() and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGUSR1, self._on_signal)

    def _on_signal(self, signum: int, frame) -> None:
        self.signal_received = signum

    def save(self, trainer: L.Trainer) -> None:
        trainer.save_checkpoint(self.path)
        self.saved_path = self.path
        rank_zero_info(f"preempted at step {trainer.global_step}: saved {self.path}; resume with resume=auto")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.signal_received is not None:
            self.save(trainer)
            raise Preempted(0)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException) and not isinstance(exception, Preempted):
            self.save(trainer)
