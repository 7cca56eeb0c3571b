"""Everything a run will read is checked before step 0 (issue 25): the evaluation env's spaces against the data, and
a Minari dataset's episodes, each a one-line error naming the env, the file or the episode. (Shard headers:
tests/data/test_data_shards.py.)"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from hydra.utils import instantiate

from rql_lightning.config import compose_config
from rql_lightning.data.dataset_checks import DatasetFormatError
from rql_lightning.data.minari_datamodule import MINARI_ROOT_ENV, MinariDataModule
from rql_lightning.errors import UserError
from rql_lightning.training import check_env_spaces, train
from tests.data.test_data_minari import episode, write_episodes
from tests.runs import TINY

OTHER_ENV = "cube-double-singletask-task1-v0"  # cube-double: another observation width than cube-single's data


def test_an_evaluation_env_whose_spaces_differ_from_the_data_is_one_line_before_step_0(cube_single_dataset, tmp_path):
    # docs/errors.md row 79
    cfg = compose_config(
        [
            f"data.dataset_path={cube_single_dataset}",
            f"paths.output_dir={tmp_path}",
            *TINY,
            "trainer.max_steps=2",
            f"callbacks.evaluation.env_name={OTHER_ENV}",
        ]
    )
    with pytest.raises(UserError) as err:
        train(cfg)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"the evaluation env {OTHER_ENV} has observations of shape (")
    assert f"but {cube_single_dataset} holds (28,) and (5,); use the data's own env" in message
    assert message.endswith("(callbacks.evaluation.env_name=null), or train on data of that env")
    assert not (tmp_path / "checkpoints").exists()  # nothing trained


def test_an_online_env_whose_spaces_differ_from_the_data_is_one_line_before_step_0(cube_single_dataset, tmp_path):
    # docs/errors.md row 79
    cfg = compose_config(
        [
            f"data.dataset_path={cube_single_dataset}",
            f"paths.output_dir={tmp_path}",
            *TINY,
            "eval.episodes=0",
            "online.steps=5",
            f"online.env_name={OTHER_ENV}",
        ]
    )
    dm = instantiate(cfg.data, _convert_="all")
    with pytest.raises(UserError) as err:
        check_env_spaces(cfg, dm, *dm.dims())
    assert str(err.value).startswith(f"the online env {OTHER_ENV} has observations of shape (")
    assert str(err.value).endswith("; use the data's own env (online.env_name=null), or train on data of that env")


def test_an_evaluation_env_of_the_datas_spaces_is_accepted(cube_single_dataset, tmp_path):
    """The check passes another env of the same spaces (a task of the same scene), not only the data's own."""
    cfg = compose_config(
        [
            f"data.dataset_path={cube_single_dataset}",
            f"paths.output_dir={tmp_path}",
            *TINY,
            "trainer.max_steps=2",
            "eval.episodes=1",
            "callbacks.evaluation.env_kwargs.max_episode_steps=5",
            "callbacks.evaluation.env_name=cube-single-singletask-task3-v0",
        ]
    )
    assert train(cfg)["step"] == 2


def edit_episode(root: Path, dataset_id: str, index: int, **arrays: np.ndarray) -> None:
    """Overwrite arrays of episode ``index`` in the dataset's HDF5 file, as a damaged or hand-made file has them."""
    with h5py.File(root / dataset_id / "data" / "main_data.hdf5", "r+") as f:
        group = f[f"episode_{index}"]
        for key, value in arrays.items():
            del group[key]
            group.create_dataset(key, data=value)
        group.attrs["total_steps"] = len(group["rewards"])


@pytest.fixture
def minari_root(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(MINARI_ROOT_ENV, str(tmp_path))
    return tmp_path


def test_an_empty_or_malformed_minari_episode_is_one_line_naming_the_dataset_and_episode(minari_root):
    # docs/errors.md row 80
    rng = np.random.default_rng(0)
    write_episodes("test/empty-v0", [episode(5, True, rng), episode(4, False, rng)])
    empty = dict(
        observations=np.zeros((1, 3), np.float32),
        actions=np.zeros((0, 2), np.float32),
        rewards=np.zeros(0),
        terminations=np.zeros(0, bool),
        truncations=np.zeros(0, bool),
    )
    edit_episode(minari_root, "test/empty-v0", 1, **empty)
    with pytest.raises(DatasetFormatError) as err:
        MinariDataModule("test/empty-v0", chunk_size=2, batch_size=4).setup("fit")
    assert str(err.value) == (
        f"Minari dataset test/empty-v0 ({minari_root / 'test' / 'empty-v0'}): episode 1 is empty (no step); "
        "rebuild the dataset (minari delete test/empty-v0, then write it again)"
    )

    write_episodes("test/short-v0", [episode(5, True, rng), episode(4, False, rng)])
    edit_episode(minari_root, "test/short-v0", 0, observations=np.zeros((5, 3), np.float32))
    with pytest.raises(
        DatasetFormatError, match=r"Minari dataset test/short-v0 .*: episode 0 has 5 observations for 5"
    ):
        MinariDataModule("test/short-v0", chunk_size=2, batch_size=4).setup("fit")

    write_episodes("test/wide-v0", [episode(3, True, rng), episode(4, False, rng)])
    edit_episode(minari_root, "test/wide-v0", 1, actions=np.zeros((4, 3), np.float32))
    with pytest.raises(DatasetFormatError, match=r"episode 1 has actions of shape \(3,\), the dataset's space \(2,\)"):
        MinariDataModule("test/wide-v0", chunk_size=2, batch_size=4).setup("fit")
