"""One replica of a seed-batched (or multi-task) checkpoint as an ordinary single-run checkpoint.

    python -m rql_lightning.modules.seed_export <run>/checkpoints/last.ckpt 3 seed3.ckpt
    python -m rql_lightning.modules.seed_export <run>/checkpoints/last.ckpt 3 task2-seed3.ckpt --task 2

The result is what a run with ``seed=3`` alone would have saved at that step: the method's own
state_dict keys and shapes, its Adam moments, its hyperparameters with ``seed=3`` and no ``seeds``,
and Lightning's loop state, so ``rql-train seed=3 ckpt_path=seed3.ckpt`` continues it as a single
run (the data stream and the draws resume from (3, rank, step), as that replica would). A replica of a
``task.ids`` run is named by its task and seed, and resumes as ``rql-train task.id=2 seed=3 ckpt_path=...``.

The export records where it came from (``exported_from`` in checks.py: the batched checkpoint, its run
directory, the replica's key, task and seed), so ``rql-eval ckpt_path=seed3.ckpt`` finds that run's evaluation
env, protocol and model class wherever the exported file lies.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from rql_lightning.checkpoint_eval import run_dir_of
from rql_lightning.checks import EXPORTED_FROM, read_checkpoint
from rql_lightning.errors import UserError

USAGE_EXIT_CODE = 2  # cli.common's: a user's mistake is one line and exit code 2


def _slice(value: Any, i: int) -> Any:
    """Replica ``i``'s slice of every stacked tensor in a (nested) state; scalars (Adam's step) stay as they are."""
    if isinstance(value, torch.Tensor):
        return value[i].clone() if value.dim() > 0 else value.clone()
    if isinstance(value, dict):
        return {k: _slice(v, i) for k, v in value.items()}
    return value


def seed_checkpoint(checkpoint: dict[str, Any], seed: int, task: int | None = None) -> dict[str, Any]:
    """The single-run checkpoint of replica ``(task, seed)`` inside a checkpoint of a module with ``seeds`` (a
    replica axis); ``task`` names the replica's task when the module has ``task_ids``, and only then."""
    hp = checkpoint.get("hyper_parameters") or {}
    seeds, task_ids = hp.get("seeds"), hp.get("task_ids")
    if seeds is None:
        raise UserError("ckpt_path holds a single-seed run, not a seed-batched one; it needs no export")
    if (task is None) != (task_ids is None):
        raise UserError(
            f"the checkpoint's replicas are (task, seed) pairs of task_ids={list(task_ids)}: name the task with --task"
            if task is None
            else f"--task {task}: the checkpoint's replicas are seeds of one task; drop --task"
        )
    pairs = list(zip(task_ids or [None] * len(seeds), seeds, strict=True))
    if (task, seed) not in pairs:
        named = f"seed={seed}" if task is None else f"--task {task} seed={seed}"
        have = f"seeds={list(seeds)}" if task is None else f"(task, seed) replicas {pairs}"
        raise UserError(f"{named} is not one of the checkpoint's {have}; pick one of them")
    i = pairs.index((task, seed))
    out = dict(checkpoint)
    out["state_dict"] = _slice(checkpoint["state_dict"], i)
    out["optimizer_states"] = [
        {"state": _slice(opt["state"], i), "param_groups": opt["param_groups"]}
        for opt in checkpoint.get("optimizer_states", [])
    ]
    out["hyper_parameters"] = {**{k: v for k, v in hp.items() if k not in ("seeds", "task_ids")}, "seed": seed}
    out.pop(EXPORTED_FROM, None)  # set by export_seed, which knows the file
    return out


def export_seed(ckpt_path: str | Path, seed: int, out_path: str | Path, task: int | None = None) -> Path:
    """Write replica ``(task, seed)`` of the batched checkpoint ``ckpt_path`` to ``out_path``; returns it."""
    source = Path(ckpt_path).expanduser().absolute()
    checkpoint = dict(read_checkpoint(ckpt_path))  # a file that is no checkpoint is one line, not a traceback
    exported = seed_checkpoint(checkpoint, seed, task)
    replica = f"seed{seed}" if task is None else f"task{task}/seed{seed}"  # FlowQModule.replica_names' key
    exported[EXPORTED_FROM] = {
        "ckpt_path": str(source),
        "run_dir": str(run_dir_of(source)),
        "replica": replica,
        "task": task,
        "seed": seed,
    }
    out = Path(out_path).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(exported, out)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Export one seed of a seed-batched checkpoint as a single-seed one.")
    ap.add_argument("ckpt_path")
    ap.add_argument("seed", type=int)
    ap.add_argument("out_path")
    ap.add_argument("--task", type=int, default=None, help="the replica's task, for a checkpoint of a task.ids run")
    args = ap.parse_args(argv)
    try:
        print(export_seed(args.ckpt_path, args.seed, args.out_path, args.task))
    except UserError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        raise SystemExit(USAGE_EXIT_CODE) from None


if __name__ == "__main__":
    main()
