"""Operator launches and FLOPs per update for R replicas on one axis: what a launch-bound GPU will see, measured
on the CPU; prints JSON.

    python benchmarks/launches.py --preset paper-manip --replicas 1,5,25 [--compile]

Eager: the ATen operators one update dispatches (counted with a ``TorchDispatchMode``), each a kernel launch on
a GPU. Compiled: the kernels inductor generates for the update's graphs (a compiled update replays them every
step; the matmuls it calls out to are not counted). ``launches_per_replica_step`` is the
proxy of the replica axis's gain: a launch-bound GPU step costs roughly launches x a few microseconds, whatever R.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

import torch
from throughput import PRESETS, module_kwargs, synthetic_batch  # beside this script
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from rql_lightning.batch import stack_records
from rql_lightning.modules.rql import RQLModule


class CountOps(TorchDispatchMode):
    """Counts every ATen operator dispatched while active (views included: each is a call on the device)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def build(preset: dict, replicas: int, batch_size: int, compile_: bool):
    torch.manual_seed(0)
    kwargs = module_kwargs(preset, compile_, None)
    module = RQLModule(**kwargs, **({"seeds": list(range(replicas))} if replicas > 1 else {}))
    batches = [
        synthetic_batch(preset["obs_dim"], preset["action_dim"], preset["chunk_size"], batch_size, "cpu", seed=s)
        for s in range(replicas)
    ]
    batch = stack_records(batches) if replicas > 1 else batches[0]
    return module, batch, module.configure_optimizers()


def eager(preset: dict, replicas: int, batch_size: int) -> dict:
    module, batch, opt = build(preset, replicas, batch_size, compile_=False)
    module.update(batch, module.replica_draws(batch_size, 0), opt)  # Adam's state exists from here on
    draws = module.replica_draws(batch_size, 1)
    with CountOps() as counted:
        module.update(batch, draws, opt)
    with FlopCounterMode(display=False) as flops:
        module.update(batch, module.replica_draws(batch_size, 2), opt)
    launches = sum(counted.ops.values())
    return {
        "replicas": replicas,
        "mode": "eager",
        "launches_per_update": launches,
        "launches_per_replica_step": launches / replicas,
        "flops_per_update": flops.get_total_flops(),
        "top_ops": dict(counted.ops.most_common(5)),
    }


def compiled(preset: dict, replicas: int, batch_size: int) -> dict:
    """Kernels inductor generates for one update's graphs (losses forward and backward, target update); a compiled
    update replays them every step, plus the extern matmul calls (not counted here) and fused Adam."""
    from torch._inductor import metrics

    torch._dynamo.reset()
    metrics.reset()
    module, batch, opt = build(preset, replicas, batch_size, compile_=True)
    module.update(batch, module.replica_draws(batch_size, 0), opt)
    first = metrics.generated_kernel_count
    module.update(batch, module.replica_draws(batch_size, 1), opt)  # recompiles, if any, show here
    return {
        "replicas": replicas,
        "mode": "compiled",
        "generated_kernels": first,
        "generated_kernels_per_replica_step": first / replicas,
        "recompiled_kernels": metrics.generated_kernel_count - first,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", choices=sorted(PRESETS), default="paper-manip")
    ap.add_argument("--replicas", default="1,5,25", help="comma-separated replica counts R")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--compile", action="store_true", help="also count the compiled update's kernels")
    args = ap.parse_args()
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    preset = PRESETS[args.preset]
    results = []
    for r in (int(x) for x in args.replicas.split(",")):
        results.append(eager(preset, r, args.batch_size))
        if args.compile:
            results.append(compiled(preset, r, args.batch_size))
    print(
        json.dumps(
            {"preset": args.preset, "batch_size": args.batch_size, "torch": torch.__version__, "results": results}
        )
    )


if __name__ == "__main__":
    main()
