"""100M-style shard directories: every shard visited on schedule, loaded in the background, memory bounded."""

from __future__ import annotations

import shutil
import threading

import lightning as L
import numpy as np
import pytest
import torch

from rql_lightning.data.dataset_checks import DatasetError
from rql_lightning.data.generate import generate_play_dataset
from rql_lightning.data.ogbench_datamodule import OGBenchDataModule, ShardedOGBenchDataModule, ogbench_datamodule
from rql_lightning.data.shard_schedule import ShardCycler
from rql_lightning.data.windows import OfflineArrays, WindowStream, sampler_from_arrays
from rql_lightning.modules.rql import RQLModule
from rql_lightning.naming import list_shards

NAME = "cube-single-play-singletask-task1-v0"
EPISODE_STEPS = 100  # short episodes: 2 train episodes (198 transitions) per shard
BATCH, H, SEED = 16, 5, 0


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("shards") / "cube-single-play-v0"
    return generate_play_dataset(
        "cube-single-play-v0", out, 6 * EPISODE_STEPS, progress=False, num_shards=3, max_episode_steps=EPISODE_STEPS
    )


def datamodule(shard_dir, interval: int, **kwargs) -> ShardedOGBenchDataModule:
    dm = ShardedOGBenchDataModule(
        NAME, chunk_size=H, batch_size=BATCH, dataset_path=str(shard_dir), shard_swap_interval=interval, **kwargs
    )
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_every_shard_visited_in_order_without_stalls_and_two_groups_at_most(shard_dir):
    dm = datamodule(shard_dir, interval=2)
    cycler = dm.shards
    assert (
        isinstance(dm, ShardedOGBenchDataModule)
        and cycler.num_groups == 3
        and [p.name for p in cycler.shards] == [f"cube-single-play-v0-00{i}.npz" for i in range(3)]
    )
    stream = iter(dm.make_stream(rank=0, start=0))
    resident = []
    for _ in range(12):
        next(stream)
        resident.append(cycler.resident)
        if cycler._pending is not None:  # training steps long enough for the loader: its shard is ready in time
            cycler._pending.result()
    assert cycler.visited == [0, 1, 2, 0, 1, 2]
    assert cycler.stalls == 0 and cycler.cold_loads == 0
    assert max(resident) <= 2  # the active shard + the one loading; old ones are freed at the swap
    assert cycler.loads == 7  # 6 activations + the prefetch of the next group
    dm.teardown("fit")


def test_batches_depend_only_on_seed_rank_step_and_the_shard_of_that_step(shard_dir):
    dm = datamodule(shard_dir, interval=3)
    cycler = dm.shards
    per_shard = [cycler.load_group(g) for g in cycler.groups]
    stream = iter(dm.make_stream(rank=1, start=0))
    for step in range(10):
        batch = next(stream)
        alone = WindowStream(per_shard[cycler.group_of(step)], BATCH, SEED, rank=1).batch(step)
        assert torch.equal(batch.observations, alone.observations), step
        assert torch.equal(batch.action_chunks, alone.action_chunks), step
    # A resumed stream (start=7) jumps straight to its shard and draws what the uninterrupted one did.
    resumed = datamodule(shard_dir, interval=3)
    first = next(iter(resumed.make_stream(rank=1, start=7)))
    assert torch.equal(first.observations, WindowStream(per_shard[2], BATCH, SEED, rank=1).batch(7).observations)
    assert resumed.shards.cold_loads == 1
    dm.teardown()
    resumed.teardown()


def test_shards_in_memory_groups_consecutive_shards(shard_dir):
    dm = datamodule(shard_dir, interval=1, shards_in_memory=2)
    cycler = dm.shards
    assert [[p.name[-7:-4] for p in g] for g in cycler.groups] == [["000", "001"], ["002"]]
    sizes = {}
    for step in range(4):
        sampler = cycler.sampler_at(step)
        sizes[cycler.group_of(step)] = len(sampler.terminals)
    assert sizes[0] == 2 * sizes[1]  # two shards of 2 episodes of 99 transitions, then one
    dm.teardown()


def test_trains_across_shard_swaps(shard_dir):
    dm = ogbench_datamodule(NAME, chunk_size=H, batch_size=BATCH, dataset_path=str(shard_dir), shard_swap_interval=2)
    assert isinstance(dm, ShardedOGBenchDataModule)  # a directory is shards, whatever data_kind says
    model = RQLModule(
        obs_dim=28, action_dim=5, chunk_size=H, flow_steps=2, num_critics=2, actor_hidden_dims=[16],
        critic_hidden_dims=[16], log_every=1,
    )  # fmt: skip
    trainer = L.Trainer(
        max_steps=6, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(model, datamodule=dm)
    assert trainer.global_step == 6
    assert dm.shards.visited[:3] == [0, 1, 2]


# --------------------------------------------------------------- stall policies, with a slow fake disk


def tagged(group: int) -> OfflineArrays:
    """Tiny arrays whose observations all equal ``group`` (so a batch tells which group served it)."""
    n = 20
    terminals = np.zeros(n, np.float32)
    terminals[9::10] = 1
    return OfflineArrays(
        observations=np.full((n, 2), group, np.float32),
        actions=np.zeros((n, 1), np.float32),
        rewards=np.zeros(n, np.float32),
        terminals=terminals,
        masks=np.ones(n, np.float32),
    )


class SlowDisk:
    """load_group for fake shards named "0", "1", ...: the first load is instant, later ones wait for a release."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def __call__(self, paths):
        self.calls += 1
        if self.calls > 1:
            assert self.release.wait(10)
        return sampler_from_arrays(tagged(int(paths[0].name)), 2, torch.device("cpu"))


def served_group(stream, step: int) -> int:
    return int(stream.batch(step).observations[0, 0])


def test_continue_policy_keeps_sampling_the_current_shard_and_counts_the_stall(tmp_path):
    disk = SlowDisk()
    cycler = ShardCycler([tmp_path / "0", tmp_path / "1"], disk, swap_interval=2, on_stall="continue")
    cycler.warm(0)
    stream = WindowStream(cycler, 4, SEED)
    assert [served_group(stream, k) for k in range(4)] == [0, 0, 0, 0]  # group 1 due at step 2, not loaded
    assert cycler.stalls == 2
    disk.release.set()
    cycler._pending.result()
    assert served_group(stream, 4) == 0  # step 4 belongs to group 0 again: group 1 was skipped, reloaded later
    assert served_group(stream, 6) == 1
    cycler.close()


def test_wait_policy_blocks_until_loaded_and_keeps_the_schedule(tmp_path):
    disk = SlowDisk()
    cycler = ShardCycler([tmp_path / "0", tmp_path / "1"], disk, swap_interval=2, on_stall="wait")
    cycler.warm(0)
    stream = WindowStream(cycler, 4, SEED)
    assert served_group(stream, 0) == 0 and served_group(stream, 1) == 0
    threading.Timer(0.3, disk.release.set).start()
    assert served_group(stream, 2) == 1
    assert cycler.stalls == 1 and cycler.stall_seconds >= 0.2
    cycler.close()


def test_sharded_datamodule_pickles_for_ddp_spawn(shard_dir):
    import pickle

    dm = datamodule(shard_dir, interval=2)
    next(iter(dm.make_stream(0, 0)))  # a prefetch in flight or done
    clone = pickle.loads(pickle.dumps(dm))
    batches = [next(iter(m.make_stream(0, 5))).observations for m in (dm, clone)]
    assert torch.equal(*batches)
    dm.teardown()
    clone.teardown()


def test_explicit_file_overrides_a_sharded_task(cube_single_dataset):
    dm = ogbench_datamodule(NAME, chunk_size=H, data_kind="100m_shards", dataset_path=str(cube_single_dataset))
    assert isinstance(dm, OGBenchDataModule) and not isinstance(dm, ShardedOGBenchDataModule)


def test_list_shards_skips_validation_files(shard_dir, tmp_path):
    assert len(list_shards(shard_dir)) == 3
    assert list_shards(tmp_path / "nope") == []


# --------------------------------------------------------------- every shard checked before step 0


def copy_with(shard_dir, tmp_path, name: str, edit) -> tuple:
    """A copy of the shard directory whose file ``name`` has ``edit(arrays)`` applied; returns (copy, that file)."""
    out = tmp_path / shard_dir.name
    shutil.copytree(shard_dir, out)
    with np.load(out / name) as data:
        arrays = {k: data[k] for k in data.files}
    edit(arrays)
    np.savez(out / name, **arrays)
    return out, out / name


def checked_before_any_load(directory, monkeypatch) -> str:
    """The one-line error prepare_data raises, with loading arrays made impossible (headers only)."""
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("a shard was loaded before the check"))
    dm = ShardedOGBenchDataModule(NAME, chunk_size=H, batch_size=BATCH, dataset_path=str(directory))
    with pytest.raises(DatasetError) as info:
        dm.prepare_data()
    assert "\n" not in str(info.value) and dm.shards is None
    return str(info.value)


def test_a_shard_with_a_column_fewer_is_named_before_step_0(shard_dir, tmp_path, monkeypatch):
    # docs/errors.md row 52b
    """docs/errors.md row 52b: the last shard lacks an observation column; found from the headers at once."""
    bad_name = "cube-single-play-v0-002.npz"
    directory, bad = copy_with(shard_dir, tmp_path, bad_name, lambda a: a.update(observations=a["observations"][:, 1:]))
    message = checked_before_any_load(directory, monkeypatch)
    assert message.startswith(f"{bad}: observations have shape (27,) per row but the environment's space is (28,)")
    assert f"rql-data download {directory.name}" in message


def test_a_val_file_or_a_dtype_that_disagrees_is_named(shard_dir, tmp_path, monkeypatch):
    """docs/errors.md row 52b: a -val.npz is checked too, and every key relabelling reads, dtype included."""
    directory, bad = copy_with(
        shard_dir, tmp_path, "cube-single-play-v0-001-val.npz", lambda a: a.update(qpos=a["qpos"].astype(np.float64))
    )
    message = checked_before_any_load(directory, monkeypatch)
    assert message.startswith(f"{bad}: qpos has per-row shape") and "float64" in message and "float32" in message


def test_a_shard_folder_without_shards_says_how_to_get_them(tmp_path, monkeypatch):
    # docs/errors.md row 52
    """docs/errors.md row 52: a folder with only -val files (or nothing) has no shards to train on."""
    directory = tmp_path / "cube-single-play-100m-v0"
    directory.mkdir()
    (directory / "cube-single-play-v0-000-val.npz").write_bytes(b"")
    message = checked_before_any_load(directory, monkeypatch)
    assert message.startswith(f"the sharded dataset {directory} has no .npz shards (searched {directory}/*.npz minus")
    assert "rql-data download" in message  # shards_hint: how to fetch them
