"""``rql-train seeds=[...]`` from the command line: one Trainer per job, all seeds in its checkpoint."""

from __future__ import annotations

import pytest
import torch

from tests.runs import TINY, TINY_NO_EVAL, explain, rql_train_here

BASE = TINY_NO_EVAL + [
    "eval.episodes=0",
    "extras.print_config=false",
]


@pytest.mark.slow
def test_multirun_puts_seeds_in_the_batch_axis_and_tasks_in_jobs(cube_single_dataset, tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "task.id=1,2", "seeds=[0,1]", "trainer.max_steps=3", f"data.dataset_path={cube_single_dataset}"]
    proc = rql_train_here([*args, *BASE, f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and (p / "checkpoints").is_dir())
    assert jobs == ["0", "1"]
    for job in jobs:
        ckpt = torch.load(sweep / job / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
        assert ckpt["global_step"] == 3
        assert ckpt["hyper_parameters"]["seeds"] == [0, 1]
        assert ckpt["state_dict"]["policy.velocity_net.weights.0"].shape[0] == 2


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["seeds=[0,0]"], "seeds=[0,0] must be a non-empty list of distinct non-negative integers; "),
        (["seeds=[]"], "seeds=[] must be a non-empty list"),
        (["seeds=[0,-1]"], "seeds=[0,-1] must be a non-empty list"),
        (["seeds=3"], "seeds=3 must be a non-empty list"),
        (["seeds=[0,1]", "online.steps=100"], "seeds=[0,1] with online.steps=100: a seed-batched run is offline only"),
    ],
)
def test_seeds_a_batch_cannot_serve_are_refused_by_check_config(overrides, message):
    from rql_lightning.checks import check_config
    from rql_lightning.config import compose_config
    from rql_lightning.errors import UserError

    with pytest.raises(UserError) as err:
        check_config(compose_config([*overrides, "paths.output_dir=/tmp/rql-seeds-test"]))
    assert str(err.value).startswith(message), str(err.value)


@pytest.mark.slow
def test_bad_seeds_are_one_line_before_the_run_directory_exists(cube_single_dataset, tmp_path):
    run_dir = tmp_path / "run"
    args = ["seeds=[0,1]", "online.steps=10", "trainer.max_steps=3", f"data.dataset_path={cube_single_dataset}"]
    proc = rql_train_here([*args, *TINY, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert proc.returncode == 2, explain(proc)
    assert proc.stderr.strip().splitlines()[-1].startswith("error: seeds=[0,1] with online.steps=10: ")
    assert not run_dir.exists()
