"""What every datamodule promises the trainer: dims before loading, a data identity, per-rank batch sizes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from rql_lightning.cli import data as data_cli
from rql_lightning.data.datamodule import ArrayDataModule
from rql_lightning.data.dataset_checks import DataConfigError
from rql_lightning.data.generate import generate_play_dataset
from rql_lightning.data.ogbench_datamodule import OGBenchDataModule, ShardedOGBenchDataModule, load_singletask
from rql_lightning.errors import UserError
from rql_lightning.naming import val_path_of

NAME = "cube-single-play-singletask-task1-v0"
DATASET = "cube-single-play-v0"


def copy_pair(src, directory):
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, directory / src.name)
    shutil.copy(val_path_of(src), directory / val_path_of(src).name)
    return directory / src.name


def test_dims_are_known_before_any_data_exists(tmp_path):
    """From the env's spaces: no file, no download, no prepare_data."""
    dm = OGBenchDataModule(NAME, chunk_size=5, data_dir=str(tmp_path / "empty"), download=False)
    assert dm.dims() == (28, 5)
    assert not (tmp_path / "empty").exists()
    sharded = ShardedOGBenchDataModule("puzzle-4x4-play-singletask-task1-v0", chunk_size=5, data_dir=str(tmp_path))
    assert sharded.dims()[1] == 5 and sharded.dims()[0] > 28


def test_dims_match_the_loaded_arrays(cube_single_dataset):
    dm = OGBenchDataModule(NAME, chunk_size=5, batch_size=8, dataset_path=str(cube_single_dataset))
    before = dm.dims()
    dm.setup("fit")
    assert before == (dm.train_sampler.observations.shape[1], dm.train_sampler.actions.shape[1])


def test_identity_tells_files_apart_and_recognises_a_copy(cube_single_dataset, tmp_path):
    """Same bytes elsewhere: the same key. Another generation (other seed, other size): another key."""
    ident = OGBenchDataModule(NAME, chunk_size=5, dataset_path=str(cube_single_dataset)).identity()
    assert ident["source"] == "ogbench" and ident["dataset"] == DATASET
    assert ident["size_bytes"] == cube_single_dataset.stat().st_size and ident["path"] == str(cube_single_dataset)
    assert ident["key"] == f"ogbench:{DATASET}#{ident['fingerprint']}"
    copy = copy_pair(cube_single_dataset, tmp_path / "copy")
    assert OGBenchDataModule(NAME, chunk_size=5, dataset_path=str(copy)).identity()["key"] == ident["key"]
    other = generate_play_dataset(DATASET, tmp_path / "other" / f"{DATASET}.npz", 40, seed=1, progress=False,
                                  max_episode_steps=20)  # fmt: skip
    other_ident = OGBenchDataModule(NAME, chunk_size=5, dataset_path=str(other)).identity()
    assert other_ident["key"] != ident["key"]
    json_safe = all(isinstance(v, (str, int)) for v in ident.values())
    assert json_safe


def test_identity_of_a_shard_directory_covers_every_shard(tmp_path):
    shards = generate_play_dataset(DATASET, tmp_path / DATASET, 60, progress=False, num_shards=3, max_episode_steps=20)
    dm = ShardedOGBenchDataModule(NAME, chunk_size=5, dataset_path=str(shards))
    ident = dm.identity()
    assert ident["source"] == "ogbench-shards"
    assert ident["size_bytes"] == sum(p.stat().st_size for p in dm.train_files()) and len(dm.train_files()) == 3
    (shards / f"{DATASET}-002.npz").unlink()
    assert dm.identity()["key"] != ident["key"]


def test_global_batch_split_over_ranks_is_the_one_process_batch(cube_single_dataset):
    """data.global_batch_size=16 on 2 ranks: rank 0's 8 windows + rank 1's 8 == one process drawing 16."""
    arrays, _ = load_singletask(NAME, cube_single_dataset)
    dm = ArrayDataModule(arrays, chunk_size=5, batch_size=999, global_batch_size=16)
    dm.setup("fit")
    assert dm.per_rank_batch_size(1) == 16 and dm.per_rank_batch_size(2) == 8 and dm.per_rank_batch_size(4) == 4
    for step in (0, 7):
        full = dm.make_stream(rank=0, start=step, world_size=1).batch(step)
        parts = [dm.make_stream(rank=r, start=step, world_size=2).batch(step) for r in (0, 1)]
        for key in ("observations", "action_chunks", "rewards", "next_observations", "valid"):
            joined = torch.cat([getattr(p, key) for p in parts])
            assert torch.equal(joined, getattr(full, key)), (step, key)
        assert not torch.equal(parts[0].observations, parts[1].observations)


def test_batch_size_stays_per_rank_without_a_global_batch(cube_single_dataset):
    arrays, _ = load_singletask(NAME, cube_single_dataset)
    dm = ArrayDataModule(arrays, chunk_size=5, batch_size=8)
    dm.setup("fit")
    assert dm.per_rank_batch_size(4) == 8
    ranks = [dm.make_stream(rank=r, start=0, world_size=2).batch(0) for r in (0, 1)]
    assert ranks[0].observations.shape == (8, 28)
    assert not torch.equal(ranks[0].observations, ranks[1].observations)  # seeded by rank


def test_global_batch_that_does_not_divide_names_the_key():
    arrays = ArrayDataModule(_tiny_arrays(), chunk_size=2, global_batch_size=10)
    with pytest.raises(DataConfigError, match="data.global_batch_size=10") as info:
        arrays.per_rank_batch_size(4)
    assert "\n" not in str(info.value) and isinstance(info.value, UserError)


def test_array_identity_follows_the_content():
    a, b = _tiny_arrays(), _tiny_arrays()
    assert ArrayDataModule(a, chunk_size=2).identity()["key"] == ArrayDataModule(b, chunk_size=2).identity()["key"]
    b.observations[3, 0] += 1
    assert ArrayDataModule(a, chunk_size=2).identity()["key"] != ArrayDataModule(b, chunk_size=2).identity()["key"]


@pytest.mark.parametrize(
    ("flag", "count"), [("--num-transitions", "0"), ("--num-transitions", "-5"), ("--workers", "0"), ("--shards", "0")]
)
def test_generate_refuses_a_non_positive_count(tmp_path, capsys, flag, count):
    # docs/errors.md row 55
    argv = ["generate", DATASET, "--num-transitions", "10", flag, count, "--data-dir", str(tmp_path), "--no-progress"]
    with pytest.raises(SystemExit) as exc:
        data_cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and "\n" not in err
    assert err == f"error: {flag}={count}" + " must be >= 1; pass a positive count", err
    assert not list(tmp_path.iterdir())  # nothing written


def _tiny_arrays():
    from rql_lightning.data.windows import OfflineArrays

    n = 20
    terminals = np.zeros(n, np.float32)
    terminals[9::10] = 1
    rng = np.random.default_rng(0)
    return OfflineArrays(
        observations=rng.normal(size=(n, 3)).astype(np.float32),
        actions=rng.uniform(-1, 1, (n, 2)).astype(np.float32),
        rewards=np.zeros(n, np.float32),
        terminals=terminals,
        masks=np.ones(n, np.float32),
    )
