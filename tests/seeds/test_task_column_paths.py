"""The paper column on the paths issue 22 names besides RQL's eager update: FQL and a FlowQModule subclass (the
example method), ``model.compile=true``, and DDP (2 gloo ranks, each holding every replica). Each runs the whole
``train()`` path on real generated OGBench data: replica (t, s) equals the run ``task.id=t seed=s``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
import torch

from tests.modules.test_fast_path import scalar_cpu_kernels
from tests.seeds.test_resume import moments
from tests.seeds.test_task_column import assert_replica_is_single_run
from tests.training.test_resume import run

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
STEPS = 3
TASKS = ["task.ids=[1,2]", "seed=1"]  # two tasks, one seed: replicas (1, 1) and (2, 1)
# FQL at alpha 10, as tests/seeds/test_equivalence.py (the float32 tolerances are sized for its gradients).
MODELS = {  # the overrides, and a hyperparameter only that model has (the column ran it)
    "fql": (["model=fql", "model.alpha=10.0"], ("alpha", 10.0)),
    "my_flow_policy": (["model=my_flow_policy", f"hydra.searchpath=[file://{EXAMPLES}]"], ("beta", 3.0)),
}


@pytest.fixture(scope="module")
def examples_importable():
    """``my_flow_policy`` importable, as ``PYTHONPATH=examples rql-train --config-dir examples`` makes it."""
    sys.path.insert(0, str(EXAMPLES))
    yield
    sys.path.remove(str(EXAMPLES))


def assert_column_is_its_single_runs(column: dict, dataset: Path, root: Path, *extra: str) -> None:
    assert column["hyper_parameters"]["task_ids"] == [1, 2] and column["hyper_parameters"]["seeds"] == [1, 1]
    for i, task in enumerate((1, 2)):
        single = run(dataset, root / f"t{task}", STEPS, *extra, f"task.id={task}", "seed=1")
        assert_replica_is_single_run(column, i, single)
    # the tasks' rewards differ, so the same seed's two replicas train apart
    weight = column["state_dict"]["critic.weights.0"]
    assert not torch.allclose(weight[0], weight[1])


@pytest.mark.slow
@pytest.mark.parametrize("model", list(MODELS))
def test_fql_and_a_subclass_column_equals_its_single_runs(model, examples_importable, cube_single_dataset, tmp_path):
    overrides, (hparam, value) = MODELS[model]
    column = run(cube_single_dataset, tmp_path / "column", STEPS, *overrides, *TASKS)
    assert column["hyper_parameters"][hparam] == value
    assert_column_is_its_single_runs(column, cube_single_dataset, tmp_path, *overrides)


@pytest.mark.slow
def test_compiled_column_equals_the_eager_single_runs(cube_single_dataset, tmp_path):
    # two Euler steps, not ten, and one hidden layer: inductor compiles fewer kernels; the equivalence is the same
    flow = ["model.flow_steps=2", "model.actor_hidden_dims=[32]", "model.critic_hidden_dims=[32]"]
    with scalar_cpu_kernels():
        column = run(cube_single_dataset, tmp_path / "column", STEPS, "model.compile=true", *flow, *TASKS)
    assert column["hyper_parameters"]["compile"] is True and column["hyper_parameters"]["flow_steps"] == 2
    assert_column_is_its_single_runs(column, cube_single_dataset, tmp_path, *flow)


@pytest.mark.slow
def test_two_gloo_ranks_column_equals_the_one_process_column(cube_single_dataset, tmp_path, caplog):
    """data.global_batch_size=64 on 2 ranks (32 windows each, every rank all replicas) == 64 on one process."""
    column = [*TASKS, "data.global_batch_size=64"]
    ddp = ["trainer.accelerator=cpu", "trainer.devices=2", "+trainer.strategy=ddp_fork"]
    with caplog.at_level(logging.INFO):
        two = run(cube_single_dataset, tmp_path / "two", STEPS, *column, *ddp)
    assert "2 ranks x 32 = global batch 64" in caplog.text  # two ranks really trained
    one = run(cube_single_dataset, tmp_path / "one", STEPS, *column)
    assert two["global_step"] == one["global_step"] == STEPS
    assert two["hyper_parameters"]["task_ids"] == [1, 2]
    for key, value in one["state_dict"].items():
        torch.testing.assert_close(two["state_dict"][key], value, rtol=1e-5, atol=1e-6, msg=key)
    for a, b in zip(moments(two), moments(one), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7, msg="Adam moments")
