"""Checkpoint writing that never leaves a half-written file where a checkpoint should be."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to a temporary file in the same directory, fsync, then ``os.replace``.

    A crash or kill mid-write leaves the previous checkpoint of that name intact and only a
    stray ``*.tmp`` file behind; a reader never sees a truncated checkpoint.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, plus: ``last.ckpt`` always holds the final step of a run.

    ModelCheckpoint writes ``last.ckpt`` only alongside a periodic checkpoint, so a run whose
    ``max_steps`` is not a multiple of ``every_n_train_steps`` would end without its final
    weights on disk (and a resumed run that saved nothing would keep the old ``last.ckpt``).
    """

    def on_train_end(self, trainer, pl_module) -> None:
        if self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        else:
            super().on_train_end(trainer, pl_module)
