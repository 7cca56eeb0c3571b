"""Does a checkpoint fit the run about to load it? Same model class, same network and data shapes.

Used twice: by ``training.py`` on an explicit ``ckpt_path`` before anything is built, and by
:meth:`FlowQModule.on_load_checkpoint` for whatever Lightning resolves (``ckpt_path=last``,
``resume=auto``), before any weight is loaded. Imports nothing of ours.
"""

from __future__ import annotations

from typing import Any

# Hyperparameters that fix the shapes of the networks and of what they read: a checkpoint only fits a run
# that agrees on all of them.
SHAPE_KEYS = (
    "obs_dim",
    "action_dim",
    "chunk_size",
    "flow_steps",
    "num_critics",
    "actor_hidden_dims",
    "critic_hidden_dims",
    "critic_layer_norm",
    "seeds",
    "task_ids",
)
DATA_KEYS = ("obs_dim", "action_dim")
TOP_LEVEL_KEYS = ("seeds", "task_ids")  # settings of the run, not of model.*
MODULE_CLASS_KEY = "module_class"  # written into every checkpoint by FlowQModule.on_save_checkpoint
# Written by modules/seed_export.py into an exported replica: the batched checkpoint it came from ("ckpt_path",
# "run_dir") and which replica it was ("replica": its key, "task", "seed"), so rql-eval reads that run's env and
# protocol wherever the exported file lies.
EXPORTED_FROM = "exported_from"
IGNORED = {"name"}  # a label, free to change across a resume


def fit_problem(checkpoint: dict[str, Any], run_hparams: dict[str, Any], module_class: str | None) -> str | None:
    """What keeps ``checkpoint`` from fitting a run with ``run_hparams`` (one line), or None."""
    saved = checkpoint.get("hyper_parameters") or {}
    saved_class = checkpoint.get(MODULE_CLASS_KEY)
    if module_class and saved_class and saved_class != module_class:
        return (
            f"was written by {saved_class}, this run builds {module_class}; resume with the model it was trained "
            "with (its run's .hydra/config.yaml names it), or drop ckpt_path to start a new run"
        )
    if not saved_class:  # older checkpoints: hyperparameters of another method mean another class
        foreign = sorted((set(saved) ^ set(run_hparams)) - IGNORED)
        if foreign:
            return (
                f"was written by another model class (hyperparameters {', '.join(foreign)} differ); resume with "
                "the model it was trained with, or drop ckpt_path to start a new run"
            )
    # a single run's hyperparameters have no seeds (no replica axis): absent is None
    both = [k for k in SHAPE_KEYS if (k in saved and k in run_hparams) or k in TOP_LEVEL_KEYS]
    differ = [k for k in both if _plain(saved.get(k)) != _plain(run_hparams.get(k))]
    if not differ:
        return None
    where = "; ".join(
        f"{_config_key(k)}={_plain(saved.get(k))} in the checkpoint, {_plain(run_hparams.get(k))} here" for k in differ
    )
    if saved.get("seeds") and not run_hparams.get("seeds"):
        task = " --task <task id>" if saved.get("task_ids") else ""
        where += f" (one replica of it: python -m rql_lightning.modules.seed_export <ckpt> <seed> <out.ckpt>{task})"
    data_hint = " (obs/action dims come from the data: another task or dataset)" if set(differ) & set(DATA_KEYS) else ""
    return (
        f"does not fit this run: {where}{data_hint}; resume with the checkpoint's settings (its run's "
        ".hydra/config.yaml lists them), or drop ckpt_path to start a new run"
    )


def _config_key(hparam: str) -> str:
    if hparam == "task_ids":
        return "task.ids (the replicas' tasks)"
    return hparam if hparam in DATA_KEYS + TOP_LEVEL_KEYS else f"model.{hparam}"


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple | list) else value
