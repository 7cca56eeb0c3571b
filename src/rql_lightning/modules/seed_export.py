"""One replica of a seed-batched (or multi-task) checkpoint as the single-run checkpoint that run would have saved,
recording where it came from (``exported_from``) for rql-eval; usage: docs/running.md."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from rql_lightning.checks import EXPORTED_FROM, read_checkpoint
from rql_lightning.errors import UserError
from rql_lightning.file_writes import write_atomically
from rql_lightning.naming import replica_key, run_dir_of


def _slice(value: Any, i: int) -> Any:
    """Replica ``i``'s slice of every stacked tensor in a (nested) state; scalars (Adam's step) stay as they are."""
    if isinstance(value, torch.Tensor):
        return value[i].clone() if value.dim() > 0 else value.clone()
    if isinstance(value, dict):
        return {k: _slice(v, i) for k, v in value.items()}
    return value


def export_seed(ckpt_path: str | Path, seed: int, out_path: str | Path, task: int | None = None) -> Path:
    """Write replica ``(task, seed)`` of the batched checkpoint ``ckpt_path`` to ``out_path``; returns it. ``task``
    names the replica's task when the module has ``task_ids``, and only then."""
    source = Path(ckpt_path).expanduser().absolute()
    checkpoint = read_checkpoint(ckpt_path)  # a file that is no checkpoint is one line, not a traceback
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
    exported = dict(checkpoint)
    exported["state_dict"] = _slice(checkpoint["state_dict"], i)
    exported["optimizer_states"] = [_slice(opt, i) for opt in checkpoint.get("optimizer_states", [])]  # state, groups
    exported["hyper_parameters"] = {**{k: v for k, v in hp.items() if k not in ("seeds", "task_ids")}, "seed": seed}
    exported[EXPORTED_FROM] = {
        "ckpt_path": str(source),
        "run_dir": str(run_dir_of(source)),
        "replica": replica_key(task, seed),
        "task": task,
        "seed": seed,
    }
    out = Path(out_path).expanduser()
    state = f"{source} is unchanged"  # a refused write leaves no partial file where the export should be
    write_atomically(
        out, lambda f: torch.save(exported, f), what="the export", state=lambda: state, then="run the export again"
    )
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
    except UserError as err:  # one line and exit code 2, as cli.common's fail (this module may not import cli)
        ap.exit(2, f"error: {err}\n")


if __name__ == "__main__":
    main()
