"""Checkpoint writing that never leaves a half-written file where a checkpoint should be."""

from __future__ import annotations

import errno
import os
import shlex
from contextlib import suppress
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from rql_lightning.errors import UserError


class CheckpointWriteError(UserError):
    """The machine refused a checkpoint write (disk full, file size limit, permissions, a vanished directory)."""


# What each OS error asks of the user before ``resume=auto`` can continue.
_FIXES = {
    errno.ENOSPC: "free space on that disk",
    errno.EDQUOT: "free space within your disk quota",
    errno.EFBIG: "raise the file size limit (ulimit -f)",
    errno.EACCES: "make {dir} writable again",
    errno.EPERM: "make {dir} writable again",
    errno.EROFS: "make {dir} writable again (it is on a read-only file system)",
    errno.ENOENT: "restore {dir}, which vanished during the write",
}


class _Recorder:
    """A file's ``write`` that keeps the OS error: torch's serializer reports a failed write only as
    ``[enforce fail at inline_container.cc] unexpected pos``, without the reason."""

    def __init__(self, file) -> None:
        self.file = file
        self.error: OSError | None = None

    def write(self, data) -> int:
        try:
            return self.file.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.file.flush()


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to a temporary file in the same directory, fsync, then ``os.replace``.

    A crash, kill or second Ctrl-C mid-write leaves the previous checkpoint of that name intact and no
    temporary file behind; a reader never sees a truncated checkpoint. A write the machine refuses is a
    :class:`CheckpointWriteError` naming the path, the OS error and the last good checkpoint.
    """

    def __init__(self) -> None:
        super().__init__()
        self.last_saved: tuple[Path, int | None] | None = None  # this process's newest complete checkpoint

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        recorder = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                recorder = _Recorder(f)
                torch.save(checkpoint, recorder)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as err:
            raise CheckpointWriteError(self.refusal(path, err)) from None
        except RuntimeError as err:
            if recorder is None or recorder.error is None:
                raise
            raise CheckpointWriteError(self.refusal(path, recorder.error)) from err
        finally:
            with suppress(OSError):
                tmp.unlink(missing_ok=True)
        self.last_saved = (path, checkpoint.get("global_step"))

    def refusal(self, path: Path, err: OSError) -> str:
        """One line: the path, the OS error, the newest complete checkpoint, and what to do."""
        reason = f"[Errno {err.errno}] {err.strerror}" if err.errno else str(err)
        good, step = self.last_saved or (None, None)
        if good is None:  # nothing saved by this process: the file being replaced, else the run's last.ckpt
            good = next((p for p in (path, path.with_name("last.ckpt")) if p.is_file()), None)
            step = _saved_step(good) if good is not None else None
        if good is None:
            last = "no checkpoint of this run was written before"
        else:
            last = f"the last good checkpoint is {good}" + (f" (step {step})" if step is not None else "")
        fix = _FIXES.get(err.errno, "fix the disk").format(dir=path.parent)
        return f"could not write the checkpoint {path} ({reason}); {last}; {fix}, then resume with resume=auto"


def _saved_step(path: Path) -> int | None:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["global_step"])
    except Exception:  # noqa: BLE001 (a step we cannot read is left out of the message, not an error)
        return None


def resume_command(run_dir: str | Path) -> str:
    """The command that continues this run from ``<run_dir>``'s ``last.ckpt``: the run's own overrides (Hydra's
    record of them, when Hydra started it), with the run directory fixed and ``resume=auto``."""
    overrides = ["..."]
    with suppress(Exception):  # not started by Hydra (a test, a notebook): the placeholder stays
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task)
    dropped = ("hydra.run.dir=", "resume=", "ckpt_path=")
    kept = [o for o in overrides if not o.lstrip("+~").startswith(dropped)]
    return " ".join(["rql-train", *map(shlex.quote, kept), shlex.quote(f"hydra.run.dir={run_dir}"), "resume=auto"])


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
