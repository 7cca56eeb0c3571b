"""Checks of what the user asked for, run before anything expensive starts.

Each failure is a :class:`UserError` whose message names the problem and the fix; the CLI
prints it as one line. ``docs/errors.md`` lists every case.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from rql_lightning.checkpoint_fit import fit_problem
from rql_lightning.errors import UserError
from rql_lightning.schema import validate

NUM_TASK_IDS = 5  # every OGBench single-task environment has tasks 1..5


class OversubscribedWarning(UserWarning):
    """More DDP processes than CPU cores: allowed (the result is the same), only slower."""


def available_tasks(conf_dir: str | Path) -> list[str]:
    return sorted(p.stem for p in (Path(conf_dir) / "task").glob("*.yaml"))


def check_config(cfg: Any) -> None:
    """Every setting within its declared range (:mod:`rql_lightning.schema`), a task id of the task, seeds a
    seed batch can serve, devices and a sampling device this machine and this torch build can serve."""
    task_id = cfg.task.get("id")
    if not isinstance(task_id, int) or not 1 <= task_id <= NUM_TASK_IDS:
        raise UserError(f"task.id={task_id} is not a task of {cfg.task.name}; valid ids: 1 2 3 4 5")
    validate(cfg)
    check_seeds(cfg)
    check_devices(cfg.trainer.get("accelerator", "auto"), cfg.trainer.get("devices", 1))
    check_sampling_device(str(cfg.data.get("device", "cpu")))
    check_precision(cfg.trainer.get("accelerator", "auto"), cfg.trainer.get("precision", "32-true"))


def check_seeds(cfg: Any) -> None:
    """``seeds=[...]`` trains S offline runs in one module: the online phase acts on one run."""
    seeds = cfg.get("seeds")
    if not seeds:
        return
    shown = "[" + ",".join(map(str, seeds)) + "]"
    steps = (cfg.get("online") or {}).get("steps", 0)
    if steps:
        raise UserError(
            f"seeds={shown} with online.steps={steps}: a seed-batched run is offline only; fine-tune one run per "
            "seed (rql-train -m seed=0,1,2 online.steps=...), or drop online.steps"
        )


def check_precision(accelerator: str, precision: Any) -> None:
    """fp16 needs a GPU (Lightning would silently switch a CPU run to bf16); bf16 needs one that has it."""
    import torch

    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    name = str(precision)
    if not on_gpu and name.startswith("16"):
        raise UserError(
            f"trainer.precision={name} is not supported on CPU; use trainer.precision=bf16-mixed or 32-true"
        )
    if on_gpu and name.startswith("bf16") and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        raise UserError(f"trainer.precision={name} needs a GPU with bfloat16 (Ampere or newer); use 32-true")


def check_sampling_device(device: str) -> None:
    """``data.device``: where windows are sampled; CUDA needs a CUDA build of torch and a visible GPU."""
    import torch

    if not device.startswith("cuda"):
        return
    if torch.version.cuda is None:
        raise UserError(
            f"data.device={device} but this torch build has no CUDA (torch {torch.__version__}); "
            "use data.device=cpu, or install a CUDA build (make install TORCH_SPEC=torch)"
        )
    if not torch.cuda.is_available():
        raise UserError(f"data.device={device} but no GPU is visible; use data.device=cpu")


def check_devices(accelerator: str, devices: Any) -> None:
    import torch

    gpus = torch.cuda.device_count()
    wants_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and gpus > 0)
    if not isinstance(devices, int) or devices == -1:
        return  # "auto", lists of ids and -1 are resolved by Lightning
    if devices < 1:
        raise UserError(f"trainer.devices={devices} must be >= 1")
    if accelerator in ("gpu", "cuda") and gpus == 0:
        raise UserError("trainer.accelerator=gpu but no GPU is visible; use trainer.accelerator=cpu")
    if wants_gpu and devices > gpus:
        raise UserError(f"trainer.devices={devices} but only {gpus} GPU(s) are visible; use trainer.devices={gpus}")
    cores = os.cpu_count() or 1
    if not wants_gpu and devices > cores:
        warnings.warn(
            f"trainer.devices={devices} CPU processes on {cores} cores: oversubscribed, so each rank runs slower; "
            "it still trains correctly (use trainer.devices<=%d for speed)" % cores,
            OversubscribedWarning,
            stacklevel=2,
        )


def check_output_dir(path: str | Path) -> None:
    """The run directory must be writable before hours of training produce something to save."""
    path = Path(path).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise UserError(
            f"cannot write to the output directory {path} ({err.strerror}); choose another with hydra.run.dir=..."
        ) from None


def check_run_dir_arguments(argv: list[str]) -> None:
    """Before Hydra starts: the run/sweep directory given on the command line (or the current
    directory, where ``outputs/`` goes) must be creatable. Hydra creates it itself and would
    report a failure as a traceback."""
    targets = [a.split("=", 1)[1] for a in argv if a.startswith(("hydra.run.dir=", "hydra.sweep.dir="))]
    for target in targets or ["."]:
        if "${" in target:
            continue  # resolved by Hydra; checked again inside the run
        path = Path(target).expanduser().absolute()
        existing = next((p for p in (path, *path.parents) if p.exists()), None)
        if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise UserError(
                f"cannot create the output directory {path}: {existing} is not a writable directory; "
                "choose another with hydra.run.dir=... (or hydra.sweep.dir=... for -m)"
            )


def read_checkpoint(ckpt_path: str | Path) -> dict[str, Any]:
    """A Lightning checkpoint from disk (memory-mapped), or a one-line UserError saying why not."""
    import torch

    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        raise UserError(f"ckpt_path={ckpt_path} does not exist; point it at a .ckpt (e.g. <run>/checkpoints/last.ckpt)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as err:  # noqa: BLE001 (any unpickling failure means the same thing here)
        raise UserError(
            f"ckpt_path={ckpt_path} is not a readable checkpoint ({type(err).__name__}); it may be truncated"
        ) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "global_step" not in ckpt:
        raise UserError(f"ckpt_path={ckpt_path} is not a Lightning checkpoint of rql-train; point it at a .ckpt")
    return ckpt


def check_checkpoint(
    ckpt_path: str | Path, run_hparams: dict[str, Any] | None = None, module_class: str | None = None
) -> None:
    """The checkpoint is readable and fits this run (:func:`rql_lightning.checkpoint_fit.fit_problem`)."""
    ckpt = read_checkpoint(ckpt_path)
    if run_hparams is None:
        return
    problem = fit_problem(ckpt, run_hparams, module_class)
    if problem:
        raise UserError(f"ckpt_path={ckpt_path} {problem}")
