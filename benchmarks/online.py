"""Online-phase throughput of one real run on cube-single at the quickstart's sizes; prints JSON.

    python benchmarks/online.py [--offline 300] [--online 300] [--utd 1] [--device cpu|cuda] [--compile]

One ``rql-train``-equivalent run (``experiment=quickstart``: K 4, 3x256 networks, batch 256) on a
locally generated cube-single play dataset, in the real OGBench env: ``--offline`` updates, then
``--online`` environment steps with ``--utd`` updates each. Reports the offline updates/s, and for the
online phase the updates/s, the environment steps/s and the seconds the trainer waited for the env.
``online_phase_callback_s``: the trainer's time in the online callback (acting, waiting, storing).
The first ``--warmup`` updates of each phase are left out (compilation, the env process starting).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import lightning as L

from rql_lightning.config import compose_config
from rql_lightning.data.generate import ensure_play_dataset
from rql_lightning.online.phase import OnlinePhase
from rql_lightning.training import train


class PhaseTimer(L.Callback):
    """Wall time at given update counts (the start of those updates), and at the end of training."""

    marks: dict[int, float] = {}

    def __init__(self, at: list[int]) -> None:
        self.at = set(at)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step in self.at:
            PhaseTimer.marks[trainer.global_step] = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        PhaseTimer.marks[trainer.global_step] = time.perf_counter()
        PhaseTimer.metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("online/")}


def timed(hook):
    """``hook`` with its wall time added to ``PhaseTimer.callback_s`` (the online phase's own cost per update)."""

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return hook(*args, **kwargs)
        finally:
            PhaseTimer.callback_s += time.perf_counter() - start

    return wrapper


PhaseTimer.callback_s = 0.0
OnlinePhase.on_train_batch_start = timed(OnlinePhase.on_train_batch_start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offline", type=int, default=300)
    parser.add_argument("--online", type=int, default=300)
    parser.add_argument("--utd", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", action="store_true", help="the quickstart's compiled update")
    parser.add_argument("--transitions", type=int, default=20000, help="size of the generated dataset")
    parser.add_argument("--data-dir", default=None, help="where the generated dataset is cached")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rql-online-bench-"))
    data_dir = Path(args.data_dir) if args.data_dir else work / "data"
    dataset = ensure_play_dataset("cube-single-play-v0", data_dir, args.transitions, num_workers=1)
    total = args.offline + args.online * args.utd
    marks = [args.warmup, args.offline, args.offline + args.warmup * args.utd]
    accelerator = "gpu" if args.device.startswith("cuda") else "cpu"
    overrides = [
        "experiment=quickstart",
        f"data.dataset_path={dataset}",
        f"data.device={args.device}",
        f"paths.output_dir={work / 'run'}",
        f"trainer.max_steps={args.offline}",
        f"trainer.accelerator={accelerator}",
        "trainer.enable_progress_bar=false",
        f"model.compile={str(args.compile).lower()}",
        f"online.steps={args.online}",
        f"online.utd={args.utd}",
        "~callbacks.evaluation",
        f"callbacks.checkpoint.every_n_train_steps={total + 1}",
        "+callbacks.timer._target_=__main__.PhaseTimer",
        f"+callbacks.timer.at=[{','.join(map(str, marks))}]",
        "logger=csv",
    ]
    train(compose_config(overrides))
    t = PhaseTimer.marks
    offline_updates = args.offline - args.warmup
    online_updates = total - marks[2]
    online_s = t[total] - t[marks[2]]
    result = {
        "benchmark": "online",
        "task": "cube-single-singletask-task1-v0",
        "sizes": "quickstart (K 4, 3x256, batch 256)",
        "device": args.device,
        "compile": args.compile,
        "utd": args.utd,
        "offline_updates": args.offline,
        "online_env_steps": args.online,
        "offline_updates_per_s": offline_updates / (t[args.offline] - t[args.warmup]),
        "online_updates_per_s": online_updates / online_s,
        "online_env_steps_per_s": online_updates / args.utd / online_s,
        "online_wait_s": PhaseTimer.metrics.get("online/wait_s"),
        "online_phase_callback_s": PhaseTimer.callback_s,
        "online_phase_s": t[total] - t[args.offline],
        "buffer_size": PhaseTimer.metrics.get("online/buffer_size"),
        "python": sys.version.split()[0],
        "machine": platform.machine(),
    }
    result["online_vs_offline_updates"] = result["online_updates_per_s"] / result["offline_updates_per_s"]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
