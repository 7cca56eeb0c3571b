"""Update steps per second of RQLModule.update on synthetic windows; prints JSON.

    python benchmarks/throughput.py --preset paper-manip --device cpu [--compile]

Presets: the two reference shapes at the paper's sizes (batch 256, K 10, F 10, 4x512) and the
quickstart's reduced sizes.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time

import torch

from rql_lightning.batch import ChunkBatch
from rql_lightning.modules.rql import RQLModule

PRESETS = {
    "paper-manip": dict(obs_dim=40, action_dim=5, chunk_size=5, hidden=(512,) * 4, num_critics=10),
    "paper-loco": dict(obs_dim=29, action_dim=8, chunk_size=1, hidden=(512,) * 4, num_critics=10),
    "quickstart": dict(obs_dim=28, action_dim=5, chunk_size=5, hidden=(256,) * 3, num_critics=4),
}


def synthetic_batch(obs_dim: int, action_dim: int, h: int, batch_size: int, device: str) -> ChunkBatch:
    g = torch.Generator().manual_seed(0)
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", choices=sorted(PRESETS), default="paper-manip")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    p = PRESETS[args.preset]
    torch.manual_seed(0)
    module = RQLModule(
        obs_dim=p["obs_dim"],
        action_dim=p["action_dim"],
        chunk_size=p["chunk_size"],
        actor_hidden_dims=p["hidden"],
        critic_hidden_dims=p["hidden"],
        num_critics=p["num_critics"],
        compile=args.compile,
    ).to(args.device)
    opt = module.configure_optimizers()
    batch = synthetic_batch(p["obs_dim"], p["action_dim"], p["chunk_size"], args.batch_size, args.device)
    step = module.update

    def run(n: int) -> None:
        for _ in range(n):
            step(batch, module.draw(args.batch_size), opt)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    t0 = time.perf_counter()
    run(args.warmup)
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    run(args.steps)
    elapsed = time.perf_counter() - t0
    out = {
        "preset": args.preset,
        "device": args.device,
        "compiled": args.compile,
        "batch_size": args.batch_size,
        "steps_per_s": args.steps / elapsed,
        "warmup_s": warm,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
    }
    if args.device.startswith("cuda"):
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
        out["gpu"] = torch.cuda.get_device_name()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
