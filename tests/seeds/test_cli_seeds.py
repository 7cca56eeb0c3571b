"""``rql-train seeds=[...]`` from the command line: one Trainer per job, all seeds in its checkpoint."""

from __future__ import annotations

import pytest
import torch

from tests.test_cli import TINY, explain, rql_train

BASE = [o for o in TINY if not o.startswith("callbacks.evaluation")] + ["eval.episodes=0", "extras.print_config=false"]


@pytest.mark.slow
def test_multirun_puts_seeds_in_the_batch_axis_and_tasks_in_jobs(cube_single_dataset, tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "task.id=1,2", "seeds=[0,1]", "trainer.max_steps=3", f"data.dataset_path={cube_single_dataset}"]
    proc = rql_train([*args, *BASE, f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and (p / "checkpoints").is_dir())
    assert jobs == ["0", "1"]
    for job in jobs:
        ckpt = torch.load(sweep / job / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
        assert ckpt["global_step"] == 3
        assert ckpt["hyper_parameters"]["seeds"] == [0, 1]
        assert ckpt["state_dict"]["replica.policy.velocity_net.weights.0"].shape[0] == 2


@pytest.mark.slow
def test_seeds_with_evaluation_on_is_one_line_error(cube_single_dataset, tmp_path):
    args = ["seeds=[0,1]", "trainer.max_steps=3", f"data.dataset_path={cube_single_dataset}", *TINY]
    proc = rql_train([*args, f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert proc.returncode == 2, explain(proc)
    assert "error: seeds=[0, 1] with eval.episodes=" in proc.stderr
