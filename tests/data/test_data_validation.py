"""Every loader validates its data: each kind of bad dataset fails with one DatasetError naming the file and a fix."""

from __future__ import annotations

import numpy as np
import ogbench
import pytest

import rql_lightning.data.ogbench_datamodule as og
from rql_lightning.data.datamodule import ArrayDataModule
from rql_lightning.data.dataset_checks import (
    ACTION_CLIP_EPS,
    ActionRangeError,
    BatchTooLargeError,
    ChunkTooLongError,
    DatasetError,
    DatasetFormatError,
    EmptyDatasetError,
    EpisodeBoundaryError,
    NonFiniteDataError,
    SpaceMismatchError,
)
from rql_lightning.data.ogbench_datamodule import OGBenchDataModule, load_singletask
from rql_lightning.data.windows import OfflineArrays

NAME = "cube-single-play-singletask-task1-v0"
FILE = "cube-single-play-v0.npz"


def raw(path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def write_pair(directory, train: dict[str, np.ndarray], val: dict[str, np.ndarray]):
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILE
    np.savez(path, **train)
    np.savez(directory / FILE.replace(".npz", "-val.npz"), **val)
    return path


@pytest.fixture(scope="module")
def good(cube_single_dataset):
    return raw(cube_single_dataset), raw(str(cube_single_dataset).replace(".npz", "-val.npz"))


def broken(tmp_path, good, edit):
    """A copy of the good dataset with ``edit(train_dict)`` applied to the train file."""
    train, val = good
    train = {k: v.copy() for k, v in train.items()}
    edit(train)
    return write_pair(tmp_path / "data", train, val)


def load_error(path) -> DatasetError:
    with pytest.raises(DatasetError) as info:
        load_singletask(NAME, path)
    message = str(info.value)
    assert str(path) in message, message
    assert "\n" not in message
    return info.value


# ------------------------------------------------------------------ the OGBench path agrees with ogbench


def test_loader_matches_ogbench_regular_layout(cube_single_dataset, monkeypatch):
    """Compact read + in-place squeeze == make_env_and_datasets(compact_dataset=False), minus next_observations."""
    monkeypatch.setattr(og, "_COMPACT_BLOCK_ROWS", 700)  # several blocks, with episode ends inside them
    train, val = load_singletask(NAME, cube_single_dataset)
    env, ref, ref_val = ogbench.make_env_and_datasets(NAME, dataset_path=str(cube_single_dataset))
    env.close()
    for ours, theirs in ((train, ref), (val, ref_val)):
        theirs["actions"] = np.clip(theirs["actions"], -1 + ACTION_CLIP_EPS, 1 - ACTION_CLIP_EPS)
        for key in ("observations", "actions", "rewards", "terminals", "masks"):
            np.testing.assert_array_equal(getattr(ours, key), theirs[key], err_msg=key)
            assert getattr(ours, key).dtype == np.float32


def test_loader_matches_ogbench_with_button_states(tmp_path):
    """Puzzle relabelling reads button_states: the same arrays as ogbench's own path, sparse rewards applied."""
    from rql_lightning.data.generate import generate_play_dataset

    path = generate_play_dataset(
        "puzzle-3x3-play-v0", tmp_path / "puzzle-3x3-play-v0.npz", 120, progress=False, max_episode_steps=60
    )
    name = "puzzle-3x3-play-singletask-task1-v0"
    train, _ = load_singletask(name, path, sparse=True)
    env, ref, _ = ogbench.make_env_and_datasets(name, dataset_path=str(path))
    env.close()
    np.testing.assert_array_equal(train.observations, ref["observations"])
    np.testing.assert_array_equal(train.masks, ref["masks"])
    np.testing.assert_array_equal(train.rewards, -(ref["rewards"] != 0).astype(np.float32))


# --------------------------------------------------------------------------------- one test per failure


def test_nan_in_observations(tmp_path, good):
    # docs/errors.md row 46
    path = broken(tmp_path, good, lambda d: d["observations"].__setitem__((17, 3), np.nan))
    err = load_error(path)
    assert isinstance(err, NonFiniteDataError) and "NaN/inf value(s) in observations (first at row " in str(err)
    assert "(first at row 17)" in str(err)


def test_inf_in_actions(tmp_path, good):
    path = broken(tmp_path, good, lambda d: d["actions"].__setitem__((5, 0), np.inf))
    assert isinstance(load_error(path), NonFiniteDataError)


def test_actions_out_of_range(tmp_path, good):
    # docs/errors.md row 47
    path = broken(tmp_path, good, lambda d: d["actions"].__imul__(2.0))
    err = load_error(path)
    assert isinstance(err, ActionRangeError) and "but the flow policy acts in [-1, 1]" in str(err)
    assert "Rescale actions to [-1, 1]" in str(err)


def test_actions_within_tolerance_are_clipped(tmp_path, good):
    path = broken(tmp_path, good, lambda d: d["actions"].__setitem__((0, 0), 1.0005))
    train, _ = load_singletask(NAME, path)
    assert train.actions.max() <= 1 - ACTION_CLIP_EPS


def test_last_episode_not_terminated(tmp_path, good):
    # docs/errors.md row 48
    path = broken(tmp_path, good, lambda d: d["terminals"].__setitem__(-1, False))
    err = load_error(path)
    assert isinstance(err, EpisodeBoundaryError)
    assert "the last row is not terminal, so the final episode never closes" in str(err)
    assert "rql-data generate cube-single-play-v0" in str(err)


def test_observation_dim_differs_from_env(tmp_path, good):
    # docs/errors.md row 45
    path = broken(tmp_path, good, lambda d: d.__setitem__("observations", d["observations"][:, :-2]))
    err = load_error(path)
    assert isinstance(err, SpaceMismatchError) and "have shape (26,)" in str(err)
    assert "per row but the environment's observation space is (28,)" in str(err)


def test_action_dim_differs_from_env(tmp_path, good):
    path = broken(tmp_path, good, lambda d: d.__setitem__("actions", np.zeros((len(d["actions"]), 3), np.float32)))
    assert isinstance(load_error(path), SpaceMismatchError)


def test_missing_key(tmp_path, good):
    # docs/errors.md row 43
    path = broken(tmp_path, good, lambda d: d.pop("qpos"))
    err = load_error(path)
    assert isinstance(err, DatasetFormatError) and "lacks the key(s) ['qpos']" in str(err)


def test_rows_of_different_lengths(tmp_path, good):
    # docs/errors.md row 43
    path = broken(tmp_path, good, lambda d: d.__setitem__("actions", d["actions"][:-1]))
    err = load_error(path)
    assert isinstance(err, DatasetFormatError) and "per-row arrays differ in length" in str(err)


def test_unreadable_file(tmp_path, good):
    # docs/errors.md row 42
    path = write_pair(tmp_path / "data", *good)
    path.write_bytes(b"<html>502 Bad Gateway</html>")
    err = load_error(path)
    assert isinstance(err, DatasetFormatError) and "truncated download" in str(err)


def test_empty_dataset(tmp_path, good):
    # docs/errors.md row 49
    path = broken(tmp_path, good, lambda d: d.update({k: v[:0] for k, v in d.items()}))
    err = load_error(path)
    assert isinstance(err, EmptyDatasetError) and f"{path} holds no transitions" in str(err)


def test_datamodule_reports_the_file(tmp_path, good):
    path = broken(tmp_path, good, lambda d: d["observations"].__setitem__((0, 0), np.nan))
    dm = OGBenchDataModule(NAME, chunk_size=5, batch_size=32, dataset_path=str(path))
    dm.prepare_data()
    with pytest.raises(NonFiniteDataError, match=str(path)):
        dm.setup("fit")


# -------------------------------------------------------------- window-level checks (any data source)


def episodes(lengths: list[int], obs_dim: int = 3, action_dim: int = 2) -> OfflineArrays:
    n = sum(lengths)
    terminals = np.zeros(n, np.float32)
    terminals[np.cumsum(lengths, dtype=np.int64) - 1] = 1
    rng = np.random.default_rng(0)
    return OfflineArrays(
        observations=rng.normal(size=(n, obs_dim)).astype(np.float32),
        actions=rng.uniform(-1, 1, (n, action_dim)).astype(np.float32),
        rewards=np.zeros(n, np.float32),
        terminals=terminals,
        masks=np.ones(n, np.float32),
    )


def test_chunk_longer_than_every_episode():
    # docs/errors.md row 50
    dm = ArrayDataModule(episodes([3, 4, 4]), chunk_size=5, batch_size=4)
    with pytest.raises(ChunkTooLongError, match="longest episode has 4 transition"):
        dm.setup("fit")
    ArrayDataModule(episodes([3, 5]), chunk_size=5, batch_size=4).setup("fit")  # one episode suffices


def test_batch_larger_than_dataset():
    # docs/errors.md row 51
    with pytest.raises(BatchTooLargeError, match="data.batch_size=64 exceeds its 20 transitions"):
        ArrayDataModule(episodes([10, 10]), chunk_size=2, batch_size=64).setup("fit")


def test_array_checks_apply_to_in_memory_arrays():
    arrays = episodes([10, 10])
    arrays.rewards[4] = np.nan
    with pytest.raises(NonFiniteDataError, match="rewards"):
        ArrayDataModule(arrays, chunk_size=2, batch_size=4).setup("fit")
    arrays = episodes([10, 10])
    arrays.terminals[-1] = 0
    with pytest.raises(EpisodeBoundaryError):
        ArrayDataModule(arrays, chunk_size=2, batch_size=4).setup("fit")
    with pytest.raises(EmptyDatasetError):
        ArrayDataModule(episodes([]), chunk_size=2, batch_size=4).setup("fit")


def test_a_missing_file_is_a_user_error_caught_as_file_not_found(tmp_path):
    """Callers that catch FileNotFoundError or ValueError keep working; the CLI prints it as one line."""
    from rql_lightning.errors import UserError

    missing = tmp_path / FILE
    for catch in (FileNotFoundError, ValueError, UserError):
        with pytest.raises(catch, match=str(missing)):
            load_singletask(NAME, missing)


def test_pickled_object_arrays_are_one_line_error(tmp_path, good):
    # docs/errors.md row 44
    """An .npz holding an object array is refused before numpy would unpickle it."""
    train, val = good
    pickled = np.array([{"a": 1}] * len(train["qpos"]), dtype=object)
    path = write_pair(tmp_path / "data", {**train, "qpos": pickled}, val)
    err = load_error(path)
    assert isinstance(err, DatasetFormatError) and "object (pickled)" in str(err) and "qpos" in str(err)
