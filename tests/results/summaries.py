"""Hand-written ``summary.json`` files with known numbers, for checking the arithmetic of the tables."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

# success[env][task] = values for seeds 0, 1, 2
RQL = {
    "cube-double": {1: [0.2, 0.4, 0.6], 2: [0.4, 0.6, 0.8]},  # per-seed task means 0.3, 0.5, 0.7
    "scene": {1: [1.0, 1.0, 1.0], 2: [0.0, 0.5, 1.0]},  # 0.5, 0.75, 1.0
}
FQL = {"cube-double": {1: [0.0, 0.1, 0.2], 2: [0.0, 0.1, 0.2]}}  # 0.0, 0.1, 0.2
OGBENCH_CONFIG = {"model": {"alpha": 3.0}, "data": {"_target_": "rql_lightning.data.datamodule.OGBenchDataModule"}}


def write_summary(root: Path, model: str, env: str, task_id: int, seed: int, success: float, **extra) -> Path:
    """A finished run's summary as older writers left it (class name, no ``data`` record), unless ``extra``."""
    run = root / model / env / f"task{task_id}" / f"seed{seed}"
    run.mkdir(parents=True)
    curve = [
        {"step": s, "success_rate": success * s / 200_000, "return": 0.0, "episodes": 5} for s in (100_000, 200_000)
    ]
    config = {**OGBENCH_CONFIG, "data": {**OGBENCH_CONFIG["data"], "dataset": f"{env}-play-v0"}}
    summary = {
        "task": env,
        "task_id": task_id,
        "seed": seed,
        "model": model,
        "status": "finished",
        "step": 200_000,
        "eval_step": 200_000,
        "success_rate": success,
        "return": -10.0,
        "curve": curve,
        "updated_at": "2026-01-01T00:00:00+00:00",
        "config": config,
        **extra,
    }
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def write_grid(root: Path) -> Path:
    """The RQL and FQL grids above, plus three summaries that must be left out."""
    for model, table in (("RQLModule", RQL), ("FQLModule", FQL)):
        for env, tasks in table.items():
            for task_id, values in tasks.items():
                for seed, success in enumerate(values):
                    write_summary(root, model, env, task_id, seed, success)
    # left out: a crashed run, one that never evaluated, and an older duplicate of a counted run
    write_summary(root / "crashed", "RQLModule", "scene", 3, 0, 0.9, status="failed")
    write_summary(root / "early", "RQLModule", "scene", 4, 0, 0.9, status="running", success_rate=None, curve=[])
    write_summary(root / "old", "RQLModule", "scene", 1, 0, 0.0, updated_at="2025-01-01T00:00:00+00:00")
    return root


def se(values) -> float:
    return float(np.std(values, ddof=1) / math.sqrt(len(values)))
