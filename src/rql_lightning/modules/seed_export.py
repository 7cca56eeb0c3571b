"""One replica of a seed-batched checkpoint as an ordinary single-run checkpoint.

    python -m rql_lightning.modules.seed_export <run>/checkpoints/last.ckpt 3 seed3.ckpt

The result is what a run with ``seed=3`` alone would have saved at that step: the method's own
state_dict keys and shapes, its Adam moments, its hyperparameters with ``seed=3`` and no ``seeds``,
and Lightning's loop state, so ``rql-train seed=3 ckpt_path=seed3.ckpt`` continues it as a single
run (the data stream and the draws resume from (3, rank, step), as that replica would).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from rql_lightning.errors import UserError


def _slice(value: Any, i: int) -> Any:
    """Replica ``i``'s slice of every stacked tensor in a (nested) state; scalars (Adam's step) stay as they are."""
    if isinstance(value, torch.Tensor):
        return value[i].clone() if value.dim() > 0 else value.clone()
    if isinstance(value, dict):
        return {k: _slice(v, i) for k, v in value.items()}
    return value


def seed_checkpoint(checkpoint: dict[str, Any], seed: int) -> dict[str, Any]:
    """The single-run checkpoint of ``seed`` inside a checkpoint of a module with ``seeds`` (a replica axis)."""
    hp = checkpoint.get("hyper_parameters") or {}
    seeds = hp.get("seeds")
    if seeds is None:
        raise UserError("ckpt_path holds a single-seed run, not a seed-batched one; it needs no export")
    if seed not in seeds:
        raise UserError(f"seed={seed} is not one of the checkpoint's seeds={list(seeds)}; pick one of them")
    i = list(seeds).index(seed)
    out = dict(checkpoint)
    out["state_dict"] = _slice(checkpoint["state_dict"], i)
    out["optimizer_states"] = [
        {"state": _slice(opt["state"], i), "param_groups": opt["param_groups"]}
        for opt in checkpoint.get("optimizer_states", [])
    ]
    out["hyper_parameters"] = {**{k: v for k, v in hp.items() if k != "seeds"}, "seed": seed}
    return out


def export_seed(ckpt_path: str | Path, seed: int, out_path: str | Path) -> Path:
    """Write seed ``seed`` of the seed-batched checkpoint ``ckpt_path`` to ``out_path``; returns it."""
    checkpoint = torch.load(Path(ckpt_path).expanduser(), map_location="cpu", weights_only=False)
    out = Path(out_path).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(seed_checkpoint(checkpoint, seed), out)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Export one seed of a seed-batched checkpoint as a single-seed one.")
    ap.add_argument("ckpt_path")
    ap.add_argument("seed", type=int)
    ap.add_argument("out_path")
    args = ap.parse_args(argv)
    print(export_seed(args.ckpt_path, args.seed, args.out_path))


if __name__ == "__main__":
    main()
