"""The design card's multi-device line on a CPU machine: real gloo processes through ``rql-train``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.runs import TINY_NO_EVAL, explain, rql_train

ANTMAZE_GIANT = "antmaze-giant-navigate-singletask-task1-v0"


def random_antmaze_giant_dataset(path: Path, episodes: int = 4, steps: int = 60, seed: int = 0) -> Path:
    """A tiny dataset in antmaze-giant's OGBench format, from random actions in the real env.

    OGBench's compact layout: each episode's ``steps + 1`` observations, one row each, with
    ``terminals`` set on its final row (whose action is unused); ``qpos`` for relabelling."""
    import ogbench

    env = ogbench.make_env_and_datasets(ANTMAZE_GIANT, env_only=True)
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {"observations": [], "actions": [], "terminals": [], "qpos": []}
    for e in range(episodes):
        obs, _ = env.reset(seed=seed + e)
        for t in range(steps + 1):
            action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
            rows["observations"].append(obs.astype(np.float32))
            rows["actions"].append(action)
            rows["terminals"].append(float(t == steps))
            rows["qpos"].append(env.unwrapped.data.qpos.copy().astype(np.float32))
            if t < steps:
                obs, *_ = env.step(action)
    env.close()
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in rows.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    np.savez(path.with_name(path.stem + "-val.npz"), **arrays)
    return path


@pytest.fixture(scope="module")
def antmaze_giant_dataset(tmp_path_factory) -> Path:
    return random_antmaze_giant_dataset(tmp_path_factory.mktemp("antmaze") / "antmaze-giant-navigate-v0.npz")


@pytest.mark.slow
def test_antmaze_giant_on_four_devices_warns_on_two_cores_trains_and_prints_the_config_once(
    antmaze_giant_dataset, tmp_path
):
    """Also ``trainer=ddp_sim``'s path (tests/training/test_compose.py: it is this strategy on 2 CPU ranks)."""
    # docs/errors.md row 33
    run_dir = tmp_path / "run"
    proc = rql_train(
        [
            "task=antmaze-giant",
            "trainer.devices=4",  # the design card's line; the accelerator resolves to cpu here
            "trainer.max_steps=3",
            f"data.dataset_path={antmaze_giant_dataset}",
            f"hydra.run.dir={run_dir}",
            "~callbacks.evaluation",
            "tags=[smoke]",
            *TINY_NO_EVAL,
        ],
        cwd=tmp_path,
        timeout=400,
    )
    assert proc.returncode == 0, explain(proc)
    out = proc.stdout + proc.stderr
    if (__import__("os").cpu_count() or 1) < 4:
        assert "trainer.devices=4 CPU processes on" in out and "oversubscribed" in out, explain(proc)
    assert "4 ranks x 32 = global batch 128; the paper's is 256" in out, explain(proc)
    # extras.print_config: the composed config as a tree, once (rank 0 only), groups first
    assert proc.stdout.count("_target_: rql_lightning.modules.rql.RQLModule") == 1, explain(proc)
    assert proc.stdout.index("task") < proc.stdout.index("model") < proc.stdout.index("trainer")
    assert "smoke" in proc.stdout
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 3
    assert ckpt["hyper_parameters"]["obs_dim"] == 29 and ckpt["hyper_parameters"]["action_dim"] == 8
    assert json.loads((run_dir / "summary.json").read_text())["task"] == "antmaze-giant"
