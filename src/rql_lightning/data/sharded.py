"""Windows of a 100M-style OGBench dataset: a directory of ``.npz`` shards, a few in memory at a time.

``<data_dir>/<dataset>/*.npz`` minus ``*-val.npz`` (or ``dataset_path``, a directory). Training holds
``shards_in_memory`` of them and moves to the next group every ``shard_swap_interval`` steps, loading
it in a background thread (the schedule: :class:`~rql_lightning.data.shards.ShardCycler`). Each group
is loaded through the single-file path (:func:`rql_lightning.data.ogbench.load_npz`: ogbench's
relabelling, validation), its shards concatenated.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import torch

from rql_lightning.data.arrays import concat_arrays
from rql_lightning.data.errors import DatasetNotFoundError
from rql_lightning.data.obtain import shards_hint
from rql_lightning.data.ogbench import ACTION_CLIP_EPS, load_npz, make_singletask_env
from rql_lightning.data.ogbench_datamodule import OGBenchSource
from rql_lightning.data.shards import ShardCycler, ShardedWindowStream
from rql_lightning.data.validate import ACTION_TOLERANCE, check_windows
from rql_lightning.data.windows import WindowSampler, sampler_from_arrays
from rql_lightning.naming import DATA_DIR_ENV, list_shards


class OGBenchShardLoader:
    """Loads a group of shard files into one :class:`WindowSampler` on ``device`` (reusing one env)."""

    def __init__(
        self,
        singletask_name: str,
        chunk_size: int,
        batch_size: int,
        device: torch.device,
        *,
        sparse: bool = False,
        action_clip_eps: float = ACTION_CLIP_EPS,
        action_tolerance: float = ACTION_TOLERANCE,
    ) -> None:
        self.singletask_name = singletask_name
        self.chunk_size, self.batch_size, self.device = chunk_size, batch_size, device
        self.kwargs = dict(sparse=sparse, action_clip_eps=action_clip_eps, action_tolerance=action_tolerance)
        self._env = None  # built on first use (and rebuilt after pickling: MuJoCo state does not travel)
        self._lock = threading.Lock()  # the env is used for relabelling: one load at a time

    @property
    def env(self):
        if self._env is None:
            self._env = make_singletask_env(self.singletask_name)
        return self._env

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_env": None, "_lock": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __call__(self, paths: Sequence[Path]) -> WindowSampler:
        with self._lock:
            parts = [
                load_npz(
                    p,
                    self.singletask_name,
                    self.env,
                    fix=f"delete {p.name} and fetch or regenerate that shard",
                    **self.kwargs,
                )
                for p in paths
            ]
        arrays = concat_arrays(parts)
        del parts
        source = str(paths[0]) if len(paths) == 1 else f"shards {paths[0]} .. {paths[-1].name}"
        check_windows(source, arrays.terminals, self.chunk_size, self.batch_size)  # batch: windows per step
        return sampler_from_arrays(arrays, self.chunk_size, self.device)

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None


class ShardedOGBenchDataModule(OGBenchSource):
    """Windows of a directory of OGBench shards (``task.data_kind=100m_shards``), swapped in memory."""

    source = "ogbench-shards"

    def __init__(
        self,
        singletask_name: str,
        chunk_size: int,
        batch_size: int = 256,
        *,
        shard_swap_interval: int = 1000,
        shards_in_memory: int = 1,
        shard_stall: str = "wait",
        **source,
    ) -> None:
        super().__init__(singletask_name, chunk_size, batch_size, **source)
        self.shard_swap_interval = shard_swap_interval
        self.shards_in_memory = shards_in_memory
        self.shard_stall = shard_stall
        self.shards: ShardCycler | None = None  # once set up

    def resolve_path(self) -> Path:
        """The shard directory: ``dataset_path``, else ``<data_dir>/<dataset>``."""
        return self.dataset_path if self.dataset_path is not None else self.data_dir / self.dataset_name

    def train_files(self) -> list[Path]:
        return list_shards(self.resolve_path())

    def _checked_shards(self) -> list[Path]:
        directory = self.resolve_path()
        shards = list_shards(directory)
        if not shards:
            what = "has no .npz shards" if directory.is_dir() else "does not exist"
            raise DatasetNotFoundError(
                f"the sharded dataset {directory} {what} (searched {directory}/*.npz minus *-val.npz; "
                f"data.dataset_path, or data.data_dir / ${DATA_DIR_ENV} plus task.dataset). "
                f"{shards_hint(self.dataset_name, self.singletask_name, self.data_dir)}"
            )
        return shards

    def prepare_data(self) -> None:
        self._checked_shards()  # nothing to fetch: a 100M directory is downloaded or generated by hand

    def setup(self, stage: str | None = None) -> None:
        if self.shards is not None:
            return
        loader = OGBenchShardLoader(
            self.singletask_name,
            self.chunk_size,
            self._windows_per_step(),
            self.device,
            sparse=self.sparse,
            action_clip_eps=self.action_clip_eps,
            action_tolerance=self.action_tolerance,
        )
        self.shards = ShardCycler(
            self._checked_shards(),
            loader,
            swap_interval=self.shard_swap_interval,
            shards_in_memory=self.shards_in_memory,
            on_stall=self.shard_stall,
        )
        self.shards.warm(0)

    def make_stream(self, rank: int, start: int, world_size: int = 1) -> ShardedWindowStream:
        split = world_size if self.global_batch_size is not None else 1
        batch = self.per_rank_batch_size(world_size)
        return ShardedWindowStream(self.shards, batch, self.seed, rank, start, world_size=split)

    def teardown(self, stage: str | None = None) -> None:
        if self.shards is not None:
            self.shards.close()
