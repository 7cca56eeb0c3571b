"""Checkpoint writing that never leaves a half-written file where a checkpoint should be."""

from __future__ import annotations

import shlex
from contextlib import suppress
from functools import partial
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from rql_lightning.file_writes import write_atomically


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written whole (:func:`write_atomically`): a crash mid-write leaves the previous one intact; a
    refused write names the last good checkpoint."""

    def __init__(self) -> None:
        super().__init__()
        self.last_saved: tuple[Path, int | None] | None = None  # this process's newest complete checkpoint

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        path = Path(path)
        state = partial(last_good_line, path.parent, self.last_saved)  # this process's newest, else the disk's
        write_atomically(path, lambda f: torch.save(checkpoint, f), what="the checkpoint", state=state)
        self.last_saved = (path, checkpoint.get("global_step"))


def last_good_checkpoint(directory: str | Path) -> tuple[Path, int | None] | None:
    """The highest-step ``*.ckpt`` in ``directory`` that loads (so is whole), ``last.ckpt`` on a tie; or None."""
    found = []
    for path in Path(directory).glob("*.ckpt"):
        with suppress(Exception):  # a checkpoint that does not load is not a good one
            step = int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["global_step"])
            found.append((step, path.name == "last.ckpt", path))
    step, _, path = max(found, default=(None, None, None))
    return None if path is None else (path, step)


def last_good_line(directory: str | Path, known: tuple[Path, int | None] | None = None) -> str:
    """``the last good checkpoint is <path> (step N)``: ``known`` (this process's newest), else the disk's."""
    known = known if known is not None and known[0].is_file() else None  # removed since: what the disk holds now
    good, step = known or last_good_checkpoint(directory) or (None, None)
    if good is None:
        return "no checkpoint of this run was written before"
    return f"the last good checkpoint is {good}" + (f" (step {step})" if step is not None else "")


def checkpoint_dir(trainer: Any) -> Path:
    """Where the trainer's checkpoints go: its ModelCheckpoint's ``dirpath``, else ``<root>/checkpoints``."""
    dirpath = getattr(getattr(trainer, "checkpoint_callback", None), "dirpath", None)
    return Path(dirpath) if dirpath else Path(trainer.default_root_dir) / "checkpoints"


def resume_command(run_dir: str | Path) -> str:
    """The command that continues this run: its own Hydra overrides, ``hydra.run.dir=<run_dir>`` and ``resume=auto``."""
    overrides = ["..."]
    with suppress(Exception):  # not started by Hydra (a test, a notebook): the placeholder stays
        overrides = list(HydraConfig.get().overrides.task)
    dropped = ("hydra.run.dir=", "resume=", "ckpt_path=")
    kept = [o for o in overrides if not o.lstrip("+~").startswith(dropped)]
    return " ".join(["rql-train", *map(shlex.quote, kept), shlex.quote(f"hydra.run.dir={run_dir}"), "resume=auto"])


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose ``last.ckpt`` always holds the final step (Lightning's writes it only beside a periodic
    checkpoint, so ``max_steps`` off the ``every_n_train_steps`` grid would end without the final weights)."""

    def on_train_end(self, trainer, pl_module) -> None:
        if self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        else:
            super().on_train_end(trainer, pl_module)
