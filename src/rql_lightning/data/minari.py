"""Windows of a local Minari dataset (``data=minari data.dataset_id=<id>``), as the same per-transition arrays.

Reading and the episode -> transition conversion: :mod:`rql_lightning.data.minari_read`; writing
OGBench play data as Minari: :mod:`rql_lightning.data.minari_write`. Evaluation environment:
:meth:`MinariDataModule.eval_env` (``dataset.recover_environment(eval_env=True)``);
:attr:`MinariDataModule.eval_env_name` names it ``minari:<folder>`` for the evaluation callback.

``generate_if_missing`` works for the ids ``rql-data generate --format minari`` writes
(``rql/<play dataset>-task<N>-v0``): the dataset is generated with OGBench's oracles, so
``experiment=quickstart data=minari data.dataset_id=rql/cube-single-play-task1-v0`` runs offline.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rql_lightning.data.arrays import OfflineArrays
from rql_lightning.data.datamodule import WindowDataModule
from rql_lightning.data.errors import DatasetFormatError
from rql_lightning.data.identity import data_files, data_identity
from rql_lightning.data.minari_read import box_shape, episodes_to_arrays, has_minari, minari_folder, open_minari
from rql_lightning.data.minari_write import generate_minari_dataset
from rql_lightning.data.ogbench import ACTION_CLIP_EPS
from rql_lightning.data.validate import ACTION_TOLERANCE, check_transitions
from rql_lightning.naming import MINARI_ROOT_ENV, minari_env_name, minari_root, parse_minari_id

__all__ = ["MINARI_ROOT_ENV", "MinariDataModule"]


class MinariDataModule(WindowDataModule):
    """Windows of a local Minari dataset (``data=minari data.dataset_id=<id>``)."""

    source = "minari"

    def __init__(
        self,
        dataset_id: str,
        chunk_size: int,
        batch_size: int = 256,
        data_dir: str | None = None,
        download: bool = False,
        sparse: bool = False,
        action_clip_eps: float = ACTION_CLIP_EPS,
        action_tolerance: float = ACTION_TOLERANCE,
        device: str = "cpu",
        seed: int = 0,
        global_batch_size: int | None = None,
        generate_if_missing: bool = False,
        generate_transitions: int = 200_000,
        generate_workers: int = 2,
    ) -> None:
        super().__init__(chunk_size, batch_size, device, seed, global_batch_size)
        self.dataset_id = dataset_id
        self.data_dir = data_dir
        self.download = download
        self.sparse = sparse
        self.action_clip_eps = action_clip_eps
        self.action_tolerance = action_tolerance
        self.generate_if_missing = generate_if_missing
        self.generate_transitions = generate_transitions
        self.generate_workers = generate_workers
        self.dataset = None  # the MinariDataset, once opened (by setup or dims, never by prepare_data)

    def describe_source(self) -> str:
        return f"Minari dataset {self.dataset_id} ({minari_folder(self.dataset_id, self.data_dir)})"

    def open(self):
        if self.dataset is None:
            self.dataset = open_minari(self.dataset_id, self.data_dir, self.download)
        return self.dataset

    def prepare_data(self) -> None:
        if has_minari(self.dataset_id, self.data_dir):
            return
        generated = parse_minari_id(self.dataset_id)
        if self.generate_if_missing and generated is not None:
            dataset_name, task = generated
            generate_minari_dataset(
                dataset_name,
                task,
                self.dataset_id,
                self.data_dir,
                self.generate_transitions,
                num_workers=self.generate_workers,
            )
            return
        open_minari(self.dataset_id, self.data_dir, self.download)  # downloads, or says how to get it

    def dims(self) -> tuple[int, int]:
        """From the dataset's spaces (its metadata; no episode is read)."""
        ds = self.open()
        obs_shape = box_shape(ds.observation_space, "observation", self.dataset_id)
        action_shape = box_shape(ds.action_space, "action", self.dataset_id)
        return int(obs_shape[0]), int(action_shape[0])

    def identity(self) -> dict:
        folder = minari_folder(self.dataset_id, self.data_dir)
        return data_identity(self.source, self.dataset_id, folder, data_files(folder / "data"))

    def load_arrays(self) -> OfflineArrays:
        ds = self.open()
        obs_shape = box_shape(ds.observation_space, "observation", self.dataset_id)
        action_shape = box_shape(ds.action_space, "action", self.dataset_id)
        try:
            arrays = episodes_to_arrays(ds.iterate_episodes(), ds.total_steps, obs_shape[0], action_shape[0])
        except DatasetFormatError as err:
            raise DatasetFormatError(f"{self.describe_source()}: {err}") from None
        check_transitions(
            self.describe_source(),
            arrays.observations,
            arrays.actions,
            arrays.terminals,
            arrays.rewards,
            action_tolerance=self.action_tolerance,
            obs_shape=obs_shape,
            action_shape=action_shape,
            fix=f"rebuild the dataset (minari delete {self.dataset_id}, then write it again)",
        )
        np.clip(arrays.actions, -1 + self.action_clip_eps, 1 - self.action_clip_eps, out=arrays.actions)
        if self.sparse:
            arrays.rewards = -(arrays.rewards != 0).astype(np.float32)
        return arrays

    # ----- evaluation ------------------------------------------------------------------------
    @property
    def eval_env_gym_id(self) -> str | None:
        """Gym id of the dataset's evaluation env (its collection env if none is recorded)."""
        ds = self.open()
        spec = ds._eval_env_spec or ds.env_spec  # Minari keeps the eval spec private; same rule as recover
        return spec.id if spec is not None else None

    @property
    def eval_env_name(self) -> str:
        """What the evaluation callback builds: the env Minari recovers for this dataset (by its folder,
        so a ``data.data_dir`` root works in evaluation worker processes too)."""
        return minari_env_name(minari_root(self.data_dir).absolute() / self.dataset_id)

    def eval_env(self, **kwargs: Any):
        """The evaluation environment, as Minari recovers it (``recover_environment(eval_env=True)``)."""
        return self.open().recover_environment(eval_env=True, **kwargs)
