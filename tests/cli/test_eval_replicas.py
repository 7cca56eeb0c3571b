"""``rql-eval`` on a checkpoint of several replicas (``seeds=[...]``): every replica evaluated as its own run, or the
one a key names; a key it does not hold is one line."""

from __future__ import annotations

import json

import pytest

from rql_lightning.cli.eval import evaluate_checkpoint
from rql_lightning.errors import UserError
from tests.cli.test_eval import rql_eval
from tests.runs import explain, train_tiny


@pytest.fixture(scope="module")
def seeds_run(cube_single_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("seeds-eval") / "run"
    train_tiny(out, [f"data.dataset_path={cube_single_dataset}", "seeds=[3,5]"])
    return out


@pytest.mark.slow
def test_every_replica_is_evaluated_and_one_key_picks_one(seeds_run, tmp_path):
    ckpt = str(seeds_run / "checkpoints" / "last.ckpt")
    both = evaluate_checkpoint(ckpt, tmp_path / "both", episodes=2, num_envs=1)
    assert set(both["replicas"]) == {"seed3", "seed5"} and both["seed"] == [3, 5] and both["step"] == 4
    assert both["success_rate"] == sum(r["success_rate"] for r in both["replicas"].values()) / 2
    assert json.loads((tmp_path / "both" / "eval.json").read_text())["replicas"] == both["replicas"]
    one = evaluate_checkpoint(ckpt, tmp_path / "one", episodes=2, num_envs=1, replica="seed5")
    assert one["seed"] == 5 and "replicas" not in one
    assert {k: one[k] for k in ("success_rate", "return", "length", "episodes")} == both["replicas"]["seed5"]


def test_a_replica_the_checkpoint_does_not_hold_is_one_line(seeds_run, tmp_path):
    # docs/errors.md row 71
    ckpt = str(seeds_run / "checkpoints" / "last.ckpt")
    with pytest.raises(UserError, match=r"replica=seed4 is not a replica of .*; its replicas: seed3, seed5"):
        evaluate_checkpoint(ckpt, tmp_path / "x", episodes=1, num_envs=1, replica="seed4")


@pytest.mark.slow
def test_the_command_prints_each_replica(seeds_run, tmp_path):
    ckpt = seeds_run / "checkpoints" / "last.ckpt"
    args = [f"ckpt_path={ckpt}", "eval.episodes=1", "eval.num_envs=1", f"hydra.run.dir={tmp_path}"]
    proc = rql_eval(args, cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert "  seed3: success rate" in proc.stdout and "  seed5: success rate" in proc.stdout
    assert json.loads((tmp_path / "eval.json").read_text())["seed"] == [3, 5]


@pytest.mark.slow
def test_a_paper_column_checkpoint_evaluates_each_replica_in_its_own_tasks_env(cube_single_dataset, tmp_path):
    out = tmp_path / "column"
    train_tiny(out, [f"data.dataset_path={cube_single_dataset}", "task.ids=[1,2]", "seeds=[3]"])
    ckpt = str(out / "checkpoints" / "last.ckpt")
    both = evaluate_checkpoint(ckpt, tmp_path / "both", episodes=1, num_envs=1)
    assert set(both["replicas"]) == {"task1/seed3", "task2/seed3"}
    one = evaluate_checkpoint(ckpt, tmp_path / "one", episodes=1, num_envs=1, replica="task2/seed3")
    assert one["env"] == "cube-single-singletask-task2-v0" and one["seed"] == 3
    assert {k: one[k] for k in ("success_rate", "return", "length", "episodes")} == both["replicas"]["task2/seed3"]
