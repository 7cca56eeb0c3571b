"""Update steps per second on synthetic windows, for one or several replicas per update; prints JSON.

    python benchmarks/throughput.py --preset quickstart --device cpu [--compile] [--replicas 1,4,25]

Presets: the two reference shapes at the paper's sizes (batch 256, K 10, F 10, 4x512) and the
quickstart's reduced sizes. ``--replicas 1,4`` measures R = 1 (a single run, no replica axis: what
``seeds: null`` trains; ``--seed-batch-s1`` puts R = 1 on a replica axis of one instead) and R = 4
replicas (seeds, or tasks x seeds: the update is the same) in one fused update. Every entry of
``results`` has ``replicas``, ``steps_per_s`` and ``replica_steps_per_s`` (= R x steps/s). Draws are
seeded per step as in training (one generator per replica). ``--seeds`` is another name for ``--replicas``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time

import torch

from rql_lightning.batch import ChunkBatch, stack_records
from rql_lightning.modules.rql import RQLModule

PRESETS = {
    "paper-manip": dict(obs_dim=40, action_dim=5, chunk_size=5, hidden=(512,) * 4, num_critics=10),
    "paper-loco": dict(obs_dim=29, action_dim=8, chunk_size=1, hidden=(512,) * 4, num_critics=10),
    "quickstart": dict(obs_dim=28, action_dim=5, chunk_size=5, hidden=(256,) * 3, num_critics=4),
}


def synthetic_batch(obs_dim: int, action_dim: int, h: int, batch_size: int, device: str, seed: int = 0) -> ChunkBatch:
    g = torch.Generator().manual_seed(seed)
    d = h * action_dim

    def r(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g).to(device)

    return ChunkBatch(
        observations=r(batch_size, obs_dim),
        action_chunks=r(batch_size, d) * 2 - 1,
        rewards=-r(batch_size, h).round(),
        next_observations=r(batch_size, obs_dim),
        bootstrap_mask=torch.ones(batch_size, device=device),
        valid=torch.ones(batch_size, device=device),
        action_mask=torch.ones(batch_size, d, device=device),
    )


def module_kwargs(preset: dict, compile_: bool, compile_mode: str | None) -> dict:
    return dict(
        obs_dim=preset["obs_dim"],
        action_dim=preset["action_dim"],
        chunk_size=preset["chunk_size"],
        actor_hidden_dims=list(preset["hidden"]),
        critic_hidden_dims=list(preset["hidden"]),
        num_critics=preset["num_critics"],
        compile=compile_,
        compile_mode=compile_mode,
    )


def measure(args: argparse.Namespace, num_seeds: int, batched: bool) -> dict:
    """Steps/s of ``num_seeds`` seeds per update: a single run (S = 1) or the module with ``seeds`` (replicas)."""
    p = PRESETS[args.preset]
    kwargs = module_kwargs(p, args.compile, args.compile_mode)
    batches = [
        synthetic_batch(p["obs_dim"], p["action_dim"], p["chunk_size"], args.batch_size, args.device, seed=s)
        for s in range(num_seeds)
    ]
    torch.manual_seed(0)
    module = RQLModule(**kwargs, **({"seeds": list(range(num_seeds))} if batched else {})).to(args.device)
    batch = stack_records(batches) if batched else batches[0]
    opt = module.configure_optimizers()

    def run(start: int, n: int) -> None:
        for k in range(start, start + n):
            module.update(batch, module.replica_draws(args.batch_size, k), opt)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    t0 = time.perf_counter()
    run(0, args.warmup)
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    run(args.warmup, args.steps)
    steps_per_s = args.steps / (time.perf_counter() - t0)
    return {
        "replicas": num_seeds,
        "path": "replicas" if batched else "single",
        "steps_per_s": steps_per_s,
        "replica_steps_per_s": num_seeds * steps_per_s,
        "warmup_s": warm,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", choices=sorted(PRESETS), default="paper-manip")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--compile-mode", default=None, help="e.g. reduce-overhead (CUDA graphs on GPU)")
    ap.add_argument(
        "--replicas", "--seeds", dest="seeds", default="1", help="comma-separated replica counts R, e.g. 1,4,25"
    )
    ap.add_argument("--seed-batch-s1", action="store_true", help="S = 1 on a replica axis of one, not a single run")
    ap.add_argument("--tf32", action="store_true", help="TF32 matmuls (Ampere+ GPUs)")
    ap.add_argument("--rounds", type=int, default=1, help="measure each S this often, interleaved; report the median")
    args = ap.parse_args()
    if args.tf32:
        torch.set_float32_matmul_precision("high")
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    counts = [int(s) for s in args.seeds.split(",")]
    rounds: dict[int, list[dict]] = {n: [] for n in counts}
    for _ in range(args.rounds):  # interleaved, so a busy machine slows every S alike
        for n in counts:
            rounds[n].append(measure(args, n, batched=n > 1 or args.seed_batch_s1))
            if args.device.startswith("cuda"):
                rounds[n][-1]["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
                torch.cuda.reset_peak_memory_stats()
    results = [sorted(r, key=lambda e: e["steps_per_s"])[len(r) // 2] for r in rounds.values()]
    out = {
        "preset": args.preset,
        "device": args.device,
        "compiled": args.compile,
        "compile_mode": args.compile_mode,
        "tf32": args.tf32,
        "batch_size": args.batch_size,
        "results": results,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
    }
    if args.device.startswith("cuda"):
        out["gpu"] = torch.cuda.get_device_name()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
