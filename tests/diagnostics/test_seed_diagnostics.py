"""Diagnostics of a seed-batched run: each seed's ``seed<s>/diag/*`` are the numbers its single run logs."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from rql_lightning.callbacks.premise_diagnostics import DiagnosticsCallback
from rql_lightning.data.ogbench_datamodule import OGBenchDataModule
from rql_lightning.modules.rql import RQLModule
from tests.runs import bare_trainer

TASK = "cube-single-play-singletask-task1-v0"
SEEDS, STEPS = [0, 4], 4
KWARGS = dict(
    chunk_size=5,
    flow_steps=4,
    num_critics=2,
    actor_hidden_dims=[32, 32],
    critic_hidden_dims=[32, 32],
    log_every=1000,
)


def fit(model: L.LightningModule, dataset, seed: int, seeds: list[int] | None = None) -> DiagnosticsCallback:
    datamodule = OGBenchDataModule(
        TASK, chunk_size=5, batch_size=32, dataset_path=str(dataset), download=False, seed=seed
    )
    datamodule.seeds = seeds
    callback = DiagnosticsCallback(diag_every=2, batch_size=64, seed=0)
    bare_trainer(STEPS, callbacks=[callback]).fit(model, datamodule=datamodule)
    return callback


def test_each_seed_is_diagnosed_as_its_single_run(cube_single_dataset):
    kwargs = {**KWARGS, "obs_dim": 28, "action_dim": 5}
    batched = fit(RQLModule(**kwargs, seeds=SEEDS), cube_single_dataset, 0, SEEDS)
    names = {key.split("/", 1)[1] for key in batched.latest}
    assert "diag/q_ratio" in names and "diag/val_critic_loss" in names
    assert {key.split("/", 1)[0] for key in batched.latest} == {f"seed{s}" for s in SEEDS}
    for seed in SEEDS:
        torch.manual_seed(seed)  # what seed_everything(seed) leaves for the model's initialisation
        alone = fit(RQLModule(**kwargs, seed=seed), cube_single_dataset, seed)
        assert set(alone.latest) == names
        for name, value in alone.latest.items():
            assert batched.latest[f"seed{seed}/{name}"] == pytest.approx(value, rel=1e-4, abs=1e-6), (seed, name)
    # Independent runs: their diagnostics differ.
    assert batched.latest["seed0/diag/val_actor_loss"] != batched.latest["seed4/diag/val_actor_loss"]


def test_each_task_replica_is_diagnosed_on_its_own_tasks_rewards(cube_single_dataset):
    """A paper-column run (tasks x seeds): replica (t, s)'s diag/* are those of the run task.id=t seed=s, its
    held-out losses on task t's rewards and masks."""
    kwargs = {**KWARGS, "obs_dim": 28, "action_dim": 5}
    tasks, seed = [1, 2], 4

    def fit_tasks(model, task_ids, task):
        datamodule = OGBenchDataModule(
            f"cube-single-play-singletask-task{task}-v0", chunk_size=5, batch_size=32,
            dataset_path=str(cube_single_dataset), download=False, seed=seed, task_ids=task_ids,
        )  # fmt: skip
        datamodule.seeds = [seed] if task_ids else None
        callback = DiagnosticsCallback(diag_every=2, batch_size=64, seed=0)
        bare_trainer(STEPS, callbacks=[callback]).fit(model, datamodule=datamodule)
        return callback

    batched = fit_tasks(RQLModule(**kwargs, seeds=[seed] * 2, task_ids=tasks), tasks, tasks[0])
    for task in tasks:
        torch.manual_seed(seed)
        alone = fit_tasks(RQLModule(**kwargs, seed=seed), None, task)
        for name, value in alone.latest.items():
            got = batched.latest[f"task{task}/seed{seed}/{name}"]
            assert got == pytest.approx(value, rel=1e-4, abs=1e-6), (task, name)
    # Same weights and windows, other rewards: the tasks' held-out critic losses differ.
    assert batched.latest["task1/seed4/diag/val_critic_loss"] != batched.latest["task2/seed4/diag/val_critic_loss"]
