"""Several tasks of one OGBench dataset in one load: observations held once, a reward and mask column per task,
and replica (task, seed) of a batched stream drawing exactly the windows of the single run of that task and seed."""

from __future__ import annotations

import shutil

import numpy as np
import ogbench
import pytest
import torch

from rql_lightning.data.datamodule import ArrayDataModule
from rql_lightning.data.dataset_checks import DataConfigError
from rql_lightning.data.ogbench_datamodule import OGBenchDataModule, ShardedOGBenchDataModule, load_singletask

DATASET = "cube-single-play-v0"
TASKS = (1, 2)
SEEDS = (0, 3)
H, BATCH = 5, 8


def name(task: int) -> str:
    return f"cube-single-play-singletask-task{task}-v0"


def test_each_task_column_is_what_ogbenchs_single_task_loader_gives(cube_single_dataset):
    """Column c of a 2-task load == ``make_env_and_datasets(<task c>, compact_dataset=False)``'s rewards and masks,
    on the train and the val file; observations and actions are that loader's too, held once."""
    train, val = load_singletask([name(t) for t in TASKS], cube_single_dataset)
    assert train.rewards.shape == train.masks.shape == (len(train), len(TASKS)) and train.num_tasks == len(TASKS)
    for c, task in enumerate(TASKS):
        env, theirs_train, theirs_val = ogbench.make_env_and_datasets(
            name(task), dataset_path=str(cube_single_dataset), compact_dataset=False
        )
        env.close()
        for ours, theirs in ((train, theirs_train), (val, theirs_val)):
            np.testing.assert_array_equal(ours.rewards[:, c], theirs["rewards"])
            np.testing.assert_array_equal(ours.masks[:, c], theirs["masks"])
            np.testing.assert_array_equal(ours.observations, theirs["observations"])
            np.testing.assert_array_equal(ours.terminals, theirs["terminals"])
    differ = (train.rewards[:, 0] != train.rewards[:, 1]).any()
    assert differ, "the two tasks' rewards should differ on this data, else the test proves nothing"


def test_a_one_task_list_is_the_single_task_load_as_one_column(cube_single_dataset):
    single, _ = load_singletask(name(2), cube_single_dataset, sparse=True, load_val=False)
    listed, _ = load_singletask([name(2)], cube_single_dataset, sparse=True, load_val=False)
    assert single.rewards.shape == (len(single),) and listed.rewards.shape == (len(single), 1)
    np.testing.assert_array_equal(listed.rewards[:, 0], single.rewards)
    np.testing.assert_array_equal(listed.masks[:, 0], single.masks)


def test_tasks_add_only_their_reward_and_mask_columns(cube_single_dataset):
    """Five tasks cost four more (reward, mask) float32 columns than one: at cube-single's row (28 + 5 + 3 floats)
    that is 1.22x the one-task arrays, within the 1.3x the paper-column runs are allowed."""
    one, _ = load_singletask(name(1), cube_single_dataset, load_val=False)
    five, _ = load_singletask([name(t) for t in range(1, 6)], cube_single_dataset, load_val=False)
    assert five.observations.shape == one.observations.shape and five.actions.shape == one.actions.shape
    assert five.nbytes - one.nbytes == len(one) * 4 * 2 * 4  # 4 more tasks x (reward, mask) x float32
    ratio = five.nbytes / one.nbytes
    print(f"5-task arrays {five.nbytes} B vs 1-task {one.nbytes} B: {ratio:.3f}x")
    assert ratio <= 1.3


def test_the_sampler_holds_one_observation_array_for_all_tasks(cube_single_dataset):
    """One ``(N, O)`` observation tensor serves every task; the tasks of one seed draw the same windows and differ
    in their rewards only."""
    dm = OGBenchDataModule(name(1), chunk_size=H, batch_size=64, dataset_path=str(cube_single_dataset),
                           task_ids=TASKS, load_val=False)  # fmt: skip
    dm.setup("fit")
    arrays, _ = load_singletask(name(1), cube_single_dataset, load_val=False)
    sampler = dm.train_sampler
    assert sampler.observations.shape == arrays.observations.shape and sampler.num_tasks == len(TASKS)
    assert sampler.rewards.shape == sampler.masks.shape == (len(arrays), len(TASKS))
    batch = dm.make_stream(0, 0).batch(0)
    assert dm.replicas == [(0, 0), (1, 0)] and batch.observations.shape == (2, 64, arrays.observations.shape[1])
    assert torch.equal(batch.observations[0], batch.observations[1])
    assert torch.equal(batch.action_chunks[0], batch.action_chunks[1])
    assert not torch.equal(batch.rewards[0], batch.rewards[1])


@pytest.mark.parametrize(("world_size", "global_batch"), [(1, None), (2, None), (2, 256)])
def test_replica_task_seed_draws_the_single_runs_batches(cube_single_dataset, world_size, global_batch):
    """Replica (t, s)'s rows of batch k == batch k of the single run ``task.id=t seed=s``, bitwise, on every rank.
    (128 windows a rank: the two tasks' rewards differ on ~2% of this data's rows, so they differ in the batch.)"""
    path = str(cube_single_dataset)
    common = dict(chunk_size=H, batch_size=128, dataset_path=path, global_batch_size=global_batch, load_val=False)
    multi = OGBenchDataModule(name(1), task_ids=TASKS, **common)
    multi.seeds = list(SEEDS)
    multi.setup("fit")
    assert multi.replicas == [(c, s) for c in range(len(TASKS)) for s in SEEDS]
    singles = {t: OGBenchDataModule(name(t), **common) for t in TASKS}
    for dm in singles.values():
        dm.setup("fit")
    tasks_differ = False
    for rank in range(world_size):
        for k in (0, 5):
            batch = multi.make_stream(rank, k, world_size).batch(k)
            tasks_differ |= not torch.equal(batch.rewards[0], batch.rewards[len(SEEDS)])  # task 1 vs 2, seed 0
            for r, (c, s) in enumerate(multi.replicas):
                single = singles[TASKS[c]]
                single.seed = s
                expected = single.make_stream(rank, k, world_size).batch(k)
                for key, value in vars(expected).items():
                    assert torch.equal(getattr(batch, key)[r], value), (rank, k, TASKS[c], s, key)
    assert tasks_differ, "the tasks' rewards never differed in these batches: the test would prove nothing"


def test_a_seeds_only_stream_is_unchanged_by_the_task_axis(cube_single_dataset):
    """``seeds`` alone: one task column, batch (S, B, ...) == each seed's single batch (as before tasks existed)."""
    arrays, _ = load_singletask(name(1), cube_single_dataset, load_val=False)
    dm = ArrayDataModule(arrays, chunk_size=H, batch_size=BATCH)
    dm.seeds = list(SEEDS)
    dm.setup("fit")
    assert dm.replicas == [(0, s) for s in SEEDS]
    batch = dm.make_stream(0, 3).batch(3)
    for r, s in enumerate(SEEDS):
        single = ArrayDataModule(arrays, chunk_size=H, batch_size=BATCH, seed=s)
        single.setup("fit")
        assert single.replicas is None
        expected = single.make_stream(0, 3).batch(3)
        for key, value in vars(expected).items():
            assert torch.equal(getattr(batch, key)[r], value), (s, key)


@pytest.mark.slow
def test_sharded_tasks_share_one_shard_stream(cube_single_dataset, tmp_path):
    """A shard directory with two tasks: one shard schedule whose every group carries a column per task, each
    replica's batch that of its task's single run, across a shard swap."""
    shards = tmp_path / DATASET
    shards.mkdir()
    for i in range(2):  # two shards (copies of the generated file: its tasks' rewards differ on ~2% of rows)
        shutil.copy(cube_single_dataset, shards / f"{DATASET}-{i:03d}.npz")
    common = dict(chunk_size=H, batch_size=128, dataset_path=str(shards), shard_swap_interval=2)
    multi = ShardedOGBenchDataModule(name(1), task_ids=TASKS, **common)
    multi.seeds = [SEEDS[1]]
    singles = {t: ShardedOGBenchDataModule(name(t), seed=SEEDS[1], **common) for t in TASKS}
    for dm in (multi, *singles.values()):
        dm.prepare_data()
        dm.setup("fit")
    stream, tasks_differ = multi.make_stream(0, 0), False
    for k in range(4):  # group 0 for k < 2, then group 1
        batch = stream.batch(k)
        tasks_differ |= not torch.equal(batch.rewards[0], batch.rewards[1])
        for r, (c, _) in enumerate(multi.replicas):
            expected = singles[TASKS[c]].make_stream(0, 0).batch(k)
            for key, value in vars(expected).items():
                assert torch.equal(getattr(batch, key)[r], value), (k, TASKS[c], key)
    assert tasks_differ, "the tasks' rewards never differed in these batches: the test would prove nothing"
    assert multi.shards.visited == [0, 1] and multi.shards.active.num_tasks == len(TASKS)
    for dm in (multi, *singles.values()):
        dm.teardown("fit")


def test_names_identity_and_eval_envs_follow_the_task_ids(cube_single_dataset):
    dm = OGBenchDataModule(name(1), chunk_size=H, dataset_path=str(cube_single_dataset), task_ids=[3, 5])
    assert dm.singletask_names == [name(3), name(5)]
    assert dm.eval_env_names == ["cube-single-singletask-task3-v0", "cube-single-singletask-task5-v0"]
    assert dm.dims() == (28, 5)
    single = OGBenchDataModule(name(1), chunk_size=H, dataset_path=str(cube_single_dataset)).identity()
    ident = dm.identity()
    assert ident == {**single, "task_ids": [3, 5]}  # the same file, key and fingerprint; which tasks beside them


@pytest.mark.parametrize("task_ids", [[], [2, 2]])
def test_task_ids_that_name_no_task_or_one_twice_are_refused(task_ids):
    with pytest.raises(DataConfigError, match="task.ids="):
        OGBenchDataModule(name(1), chunk_size=H, task_ids=task_ids)


def test_arrays_whose_columns_do_not_match_the_task_ids_are_refused(cube_single_dataset):
    arrays, _ = load_singletask([name(1), name(2)], cube_single_dataset, load_val=False)
    with pytest.raises(DataConfigError, match="2 task column"):
        ArrayDataModule(arrays, chunk_size=H, task_ids=[1, 2, 3]).setup("fit")
