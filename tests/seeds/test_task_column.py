"""A paper column in one process: ``task.ids=[1,2] seeds=[0,1]`` is the four runs ``task.id=t seed=s`` (weights,
Adam moments, evaluation), resumes exactly, exports one replica as a single run, and is read by ``rql-results`` as
two tasks of two seeds each; with the online phase it is refused in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rql_lightning.checks import check_config
from rql_lightning.config import compose_config
from rql_lightning.errors import UserError
from rql_lightning.evaluator import evaluate, task_env_name
from rql_lightning.modules.seed_export import export_seed
from rql_lightning.results import aggregate, load_runs
from tests.envs.scripted import ENV
from tests.runs import TINY
from tests.seeds.test_resume import moments
from tests.seeds.test_seed_evaluation import KW, NoisyScriptedRQL, NoisyScriptedSeeds, T
from tests.seeds.test_seed_evaluation import run as run_with_eval
from tests.training.test_resume import run

COLUMN = ["task.ids=[1,2]", "seeds=[0,1]"]
PAIRS = [(1, 0), (1, 1), (2, 0), (2, 1)]  # task-major: the replica order


def assert_replica_is_single_run(batched: dict, i: int, single: dict) -> None:
    for key, value in single["state_dict"].items():
        torch.testing.assert_close(batched["state_dict"][key][i], value, rtol=1e-5, atol=1e-6, msg=f"{i}: {key}")
    for a, b in zip(moments(batched), moments(single), strict=True):
        torch.testing.assert_close(a[i], b, rtol=1e-5, atol=1e-7, msg=f"replica {i}: Adam moments")


@pytest.fixture(scope="module")
def column(cube_single_dataset, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("column")
    return {
        "straight": run(cube_single_dataset, root / "straight", 6, *COLUMN),
        "first": run(cube_single_dataset, root / "first", 3, *COLUMN),
        "root": root,
    }


@pytest.mark.slow
def test_each_replica_equals_the_single_run_of_its_task_and_seed(column, cube_single_dataset, tmp_path):
    straight = column["straight"]
    assert straight["hyper_parameters"]["task_ids"] == [1, 1, 2, 2]
    assert straight["hyper_parameters"]["seeds"] == [0, 1, 0, 1]
    for i, (task, seed) in enumerate(PAIRS):
        single = run(cube_single_dataset, tmp_path / f"t{task}s{seed}", 6, f"task.id={task}", f"seed={seed}")
        assert_replica_is_single_run(straight, i, single)
    # the tasks' rewards differ, so the same seed's replicas on two tasks train apart
    weight = straight["state_dict"]["critic.weights.0"]
    assert not torch.equal(weight[0], weight[2])


@pytest.mark.slow
def test_baseline_column_equals_its_single_runs(cube_single_dataset, tmp_path):
    batched = run(cube_single_dataset, tmp_path / "bc", 4, "model=bc", *COLUMN)
    for i, (task, seed) in [(1, (1, 1)), (2, (2, 0))]:
        single = run(cube_single_dataset, tmp_path / f"bc{i}", 4, "model=bc", f"task.id={task}", f"seed={seed}")
        assert_replica_is_single_run(batched, i, single)


@pytest.mark.slow
def test_multi_task_resume_is_bit_identical_and_a_replica_exports_as_a_single_run(
    column, cube_single_dataset, tmp_path
):
    first = column["root"] / "first" / "checkpoints" / "last.ckpt"
    resumed = run(cube_single_dataset, tmp_path / "resumed", 6, *COLUMN, ckpt=first)
    straight = column["straight"]
    assert resumed["global_step"] == 6
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    for a, b in zip(moments(straight), moments(resumed), strict=True):
        assert torch.equal(a, b)

    exported = export_seed(first, 1, tmp_path / "t2s1.ckpt", task=2)
    continued = run(cube_single_dataset, tmp_path / "continued", 6, "task.id=2", "seed=1", ckpt=exported)
    assert "task_ids" not in continued["hyper_parameters"] and continued["hyper_parameters"]["seed"] == 1
    assert_replica_is_single_run(straight, PAIRS.index((2, 1)), continued)
    with pytest.raises(UserError, match="name the task with --task"):
        export_seed(first, 1, tmp_path / "no-task.ckpt")


def counted_acts(module: NoisyScriptedRQL) -> list[int]:
    """``module``'s policy calls, counted into the returned list."""
    calls, act = [], module.act
    module.act = lambda obs, noise: calls.append(1) or act(obs, noise)
    return calls


@pytest.mark.slow
def test_each_replica_is_evaluated_in_its_tasks_env_with_its_own_episodes_and_noise():
    """All four replicas (two tasks) act in one policy call per round: as many calls as the longest single run."""
    tasks, seeds = [1, 1, 2, 2], [3, 5, 3, 5]
    batched = NoisyScriptedSeeds(**KW, seeds=seeds, task_ids=tasks)
    batched.calls = []
    combined = evaluate(batched, ENV, num_episodes=3, num_envs=1, env_kwargs=dict(max_episode_steps=T))
    assert list(combined) == ["task1/seed3", "task1/seed5", "task2/seed3", "task2/seed5"]
    assert batched.calls[0] == (1, 1, 1, 1)  # every replica's first row, both tasks', in the first call
    returns, single_calls = [], []
    for i, (task, seed) in enumerate(zip(tasks, seeds, strict=True)):
        alone = NoisyScriptedRQL(**KW, seed=seed)
        alone.load_state_dict(batched.replica(i).state_dict())
        single_calls.append(counted_acts(alone))
        env = task_env_name(ENV, task)
        (single,) = evaluate(alone, env, num_episodes=3, seed=seed, env_kwargs=dict(max_episode_steps=T)).values()
        got = combined[f"task{task}/seed{seed}"]
        np.testing.assert_array_equal(got.episode_successes, single.episode_successes)
        np.testing.assert_array_equal(got.episode_returns, single.episode_returns)
        np.testing.assert_array_equal(got.episode_lengths, single.episode_lengths)
        returns.append(single.episode_returns.tolist())
    assert returns[0] != returns[2]  # task 1 and task 2 are different envs for the same seed and weights-draws
    calls = [len(c) for c in single_calls]
    assert len(batched.calls) == max(calls) < max(calls[:2]) + max(calls[2:])  # not one task after the other


@pytest.mark.slow
def test_column_summaries_per_task_and_seed_and_rql_results_groups_them(cube_single_dataset, tmp_path):
    out = run_with_eval(cube_single_dataset, tmp_path / "column", *COLUMN)
    assert out["task_id"] == [1, 2] and out["seed"] == [0, 1] and set(out["per_task"]) == {1, 2}
    single = run_with_eval(cube_single_dataset, tmp_path / "single", "task.id=2", "seed=1")
    assert not (tmp_path / "column" / "summary.json").exists()
    for task, seed in PAIRS:
        record = json.loads((tmp_path / "column" / f"task{task}" / f"seed{seed}" / "summary.json").read_text())
        assert record["task_id"] == task and record["seed"] == seed and record["status"] == "finished"
        assert record["config"]["task"]["id"] == task and record["config"]["seed"] == seed
        assert len(record["curve"]) == 2
        if (task, seed) == (2, 1):
            mine = json.loads((tmp_path / "single" / "summary.json").read_text())
            assert record["curve"] == mine["curve"] and out["per_task"][2][1]["return"] == single["return"]
    loaded, notes = load_runs(tmp_path / "column")
    assert not notes and sorted((r.task_id, r.seed) for r in loaded) == PAIRS
    res = aggregate(loaded)
    assert res.task[("rql", "cube-single", 1)].n_seeds == res.task[("rql", "cube-single", 2)].n_seeds == 2


@pytest.mark.parametrize(
    "overrides, match",
    [
        (["task.ids=[1,2]", "online.steps=10"], r"task\.ids=\[1,2\] with online\.steps=10: a multi-task run is "),
        (["task.ids=[1,1]"], r"task\.ids=\[1,1\] must be a non-empty list of distinct task ids, each 1\.\.5"),
        (["task.ids=[0]"], r"task\.ids=\[0\] must be"),
        (["task.ids=[1,2]", "data=minari"], r"task\.ids=\[1,2\] with data=.*MinariDataModule: that data source"),
    ],
)
def test_refused_in_one_line(overrides, match):
    # docs/errors.md rows 72, 73 and 74
    with pytest.raises(UserError, match=match) as err:
        check_config(compose_config([*TINY, *overrides]))
    assert "\n" not in str(err.value)
