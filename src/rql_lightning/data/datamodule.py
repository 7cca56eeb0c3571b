"""DataModules: an offline dataset as an endless stream of window batches.

``prepare_data`` makes sure the data exists (official download, or the local oracle generator for
the embedded default); ``setup`` loads and validates it (:mod:`rql_lightning.data.validate`) and moves
the arrays to the sampling device once; the dataloader then yields :class:`ChunkBatch` es sampled on
that device, so a GPU step never waits on a host-to-device copy.

Sources: :class:`ArrayDataModule` (arrays in memory), :class:`OGBenchDataModule` (an OGBench file, or
a directory of 100M-style shards swapped in memory, :mod:`rql_lightning.data.shards`) and
:class:`~rql_lightning.data.minari.MinariDataModule`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset

from rql_lightning.batch import ChunkBatch
from rql_lightning.data.ogbench import (
    ACTION_CLIP_EPS,
    DATA_DIR_ENV,
    DatasetNotFoundError,
    OfflineArrays,
    dataset_name_of,
    default_data_dir,
    eval_env_name_of,
    fetch_official,
    load_singletask,
    obtain_hint,
    val_path_of,
)
from rql_lightning.data.validate import ACTION_TOLERANCE, check_transitions, check_windows
from rql_lightning.data.windows import WindowSampler
from rql_lightning.seeding import BATCH_STREAM, stream_seed

log = logging.getLogger("rql_lightning")

DATA_KINDS = ("standard", "100m_shards")
SHARDED = "100m_shards"


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def sampler_from_arrays(arrays: OfflineArrays, chunk_size: int, device: torch.device) -> WindowSampler:
    def t(a):
        return torch.from_numpy(a).to(device)

    return WindowSampler(
        t(arrays.observations), t(arrays.actions), t(arrays.rewards), t(arrays.terminals), t(arrays.masks), chunk_size
    )


class WindowStream(IterableDataset):
    """Endless batches from a :class:`WindowSampler`; batch ``k`` depends only on ``(seed, rank, k)``.

    Seeding each batch from its index makes a resumed run draw exactly the batches the
    uninterrupted run would have, whatever Lightning prefetched before the checkpoint.
    """

    def __init__(self, sampler: WindowSampler, batch_size: int, seed: int, rank: int = 0, start: int = 0) -> None:
        self.sampler, self.batch_size = sampler, batch_size
        self.seed, self.rank, self.start = seed, rank, start
        self.generator = torch.Generator(device=sampler.device)

    def batch_seed(self, index: int) -> int:
        return stream_seed(self.seed, self.rank, index, BATCH_STREAM)

    def sampler_at(self, index: int) -> WindowSampler:
        """The sampler batch ``index`` is drawn from (one sampler here; the active shard when sharded)."""
        return self.sampler

    def batch(self, index: int) -> ChunkBatch:
        self.generator.manual_seed(self.batch_seed(index))
        return self.sampler_at(index).sample(self.batch_size, self.generator)

    def __iter__(self):
        index = self.start
        while True:
            yield self.batch(index)
            index += 1


class WindowDataModule(L.LightningDataModule):
    """Serves window batches from in-memory arrays; subclasses say where the arrays come from.

    Subclasses implement :meth:`load_arrays` (train arrays in OGBench's layout); this class
    puts them on the sampling device and streams batches seeded by (seed, rank, step).
    """

    def __init__(self, chunk_size: int, batch_size: int = 256, device: str = "cpu", seed: int = 0) -> None:
        super().__init__()
        self.chunk_size = chunk_size
        self.batch_size = batch_size
        self.device = resolve_device(device)
        self.seed = seed
        self.train_sampler: WindowSampler | None = None

    def load_arrays(self) -> OfflineArrays:
        raise NotImplementedError("a WindowDataModule subclass defines load_arrays()")

    def describe_source(self) -> str:
        """Names the data in error messages (a file, a directory, a dataset id)."""
        return f"the data of {type(self).__name__}"

    def setup(self, stage: str | None = None) -> None:
        if self.train_sampler is not None:
            return
        train = self.load_arrays()
        check_windows(self.describe_source(), train.terminals, self.chunk_size, self.batch_size)
        self.train_sampler = sampler_from_arrays(train, self.chunk_size, self.device)
        self.obs_dim = train.observations.shape[1]
        self.action_dim = train.actions.shape[1]

    def make_stream(self, rank: int, start: int) -> WindowStream:
        return WindowStream(self.train_sampler, self.batch_size, self.seed, rank, start)

    def train_dataloader(self) -> DataLoader:
        rank = self.trainer.global_rank if self.trainer is not None else 0
        start = self.trainer.global_step if self.trainer is not None else 0  # > 0 when resuming
        # Its own generator, so creating the loader does not consume the global RNG.
        return DataLoader(self.make_stream(rank, start), batch_size=None, num_workers=0, generator=torch.Generator())


class ArrayDataModule(WindowDataModule):
    """Windows of arrays already in memory (tests, notebooks, custom data)."""

    def __init__(
        self,
        arrays: OfflineArrays,
        chunk_size: int,
        batch_size: int = 256,
        device: str = "cpu",
        seed: int = 0,
        action_tolerance: float = ACTION_TOLERANCE,
    ):
        super().__init__(chunk_size, batch_size, device, seed)
        self.arrays = arrays
        self.action_tolerance = action_tolerance

    def describe_source(self) -> str:
        return "the arrays given to ArrayDataModule"

    def load_arrays(self) -> OfflineArrays:
        a = self.arrays
        check_transitions(
            self.describe_source(),
            a.observations,
            a.actions,
            a.terminals,
            a.rewards,
            action_tolerance=self.action_tolerance,
            fix="fix the arrays",
        )
        return a


class OGBenchDataModule(WindowDataModule):
    """Windows of an OGBench single-task dataset (``<dataset>-singletask-task<N>-v0``).

    Where the data is (first match):

    * ``dataset_path``: an explicit ``.npz`` (its ``-val.npz`` beside it), or a directory of shards;
    * ``<data_dir>/<dataset>.npz`` (``data_dir``: ``data.data_dir``, default ``$OGBENCH_DATA_DIR`` or
      ``~/.ogbench/data``), downloaded there by ogbench's own downloader when absent and ``download``;
    * ``<generated_dir>/<dataset>.npz``, generated with OGBench's oracles when ``generate_if_missing``.

    ``data_kind='100m_shards'`` (or a directory as ``dataset_path``): the dataset is a directory of
    ``.npz`` shards (``<data_dir>/<dataset>/*.npz`` minus ``*-val.npz``); training holds
    ``shards_in_memory`` of them and moves to the next group every ``shard_swap_interval`` steps, loading
    it in a background thread (see :class:`~rql_lightning.data.shards.ShardCycler`).
    """

    def __init__(
        self,
        singletask_name: str,
        chunk_size: int,
        batch_size: int = 256,
        sparse: bool = False,
        data_dir: str | None = None,
        dataset_path: str | None = None,
        download: bool = True,
        generate_if_missing: bool = False,
        generated_dir: str = "~/.cache/rql-lightning/data",
        generate_transitions: int = 200_000,
        generate_workers: int = 2,
        action_clip_eps: float = ACTION_CLIP_EPS,
        device: str = "cpu",
        seed: int = 0,
        dataset: str | None = None,
        data_kind: str = "standard",
        shard_swap_interval: int = 1000,
        shards_in_memory: int = 1,
        shard_stall: str = "wait",
        action_tolerance: float = ACTION_TOLERANCE,
        load_val: bool = True,
    ) -> None:
        super().__init__(chunk_size, batch_size, device, seed)
        if data_kind not in DATA_KINDS:
            raise ValueError(f"data_kind={data_kind!r}; expected one of {DATA_KINDS}")
        self.singletask_name = singletask_name
        self.dataset_name = dataset or dataset_name_of(singletask_name)
        self.sparse = sparse
        self.data_dir = Path(data_dir).expanduser() if data_dir else default_data_dir()
        self.dataset_path = Path(dataset_path).expanduser() if dataset_path else None
        self.download = download
        self.generate_if_missing = generate_if_missing
        self.generated_dir = Path(generated_dir).expanduser()
        self.generate_transitions = generate_transitions
        self.generate_workers = generate_workers
        self.action_clip_eps = action_clip_eps
        self.action_tolerance = action_tolerance
        self.load_val = load_val
        if self.dataset_path is not None:  # an explicit path decides: a directory is shards, a file is one file
            self.sharded = self.dataset_path.is_dir() or (data_kind == SHARDED and self.dataset_path.suffix != ".npz")
        else:
            self.sharded = data_kind == SHARDED
        self.shard_swap_interval = shard_swap_interval
        self.shards_in_memory = shards_in_memory
        self.shard_stall = shard_stall
        self.shards = None  # a ShardCycler once set up in sharded mode
        self.val_arrays: OfflineArrays | None = None

    # ----- locating the data -----------------------------------------------------------------
    def resolve_path(self) -> Path:
        """What to train on: explicit path, else the official file (or shard directory), else the generated cache."""
        if self.dataset_path is not None:
            return self.dataset_path
        if self.sharded:
            return self.data_dir / self.dataset_name
        official = self.data_dir / f"{self.dataset_name}.npz"
        if official.exists():
            return official
        generated = self.generated_dir / f"{self.dataset_name}.npz"
        if self.generate_if_missing:
            return generated
        return official

    @property
    def eval_env_name(self) -> str:
        """The OGBench single-task env this dataset's task is evaluated in."""
        return eval_env_name_of(self.singletask_name)

    def describe_source(self) -> str:
        return str(self.resolve_path())

    def prepare_data(self) -> None:
        if self.sharded and self.generate_if_missing and self.dataset_path is None:
            from rql_lightning.data.shards import list_shards

            if not list_shards(self.resolve_path()):
                base = dataset_name_of(self.singletask_name)
                log.warning(
                    "%s has no shards; data.generate_if_missing=true: training on a generated %s file instead",
                    self.resolve_path(),
                    base,
                )
                self.sharded, self.dataset_name = False, base
        if self.sharded:
            self._check_shard_dir()
            return
        path = self.resolve_path()
        if path.exists() and val_path_of(path).exists():
            return
        if self.dataset_path is not None:
            raise DatasetNotFoundError(
                f"data.dataset_path={path} does not exist (or its -val.npz is missing). Get it with: "
                f"{obtain_hint(self.dataset_name, path.parent)}"
            )
        if self.generate_if_missing:
            from rql_lightning.data.generate import ensure_play_dataset

            ensure_play_dataset(
                self.dataset_name, self.generated_dir, self.generate_transitions, num_workers=self.generate_workers
            )
        elif self.download:
            fetch_official(self.dataset_name, self.data_dir)
        else:
            raise DatasetNotFoundError(
                f"{path} (or its -val.npz) is not in {self.data_dir} (data.data_dir / ${DATA_DIR_ENV}) and "
                f"data.download=false. Get it with: {obtain_hint(self.dataset_name, self.data_dir)}"
            )

    def _check_shard_dir(self) -> list[Path]:
        from rql_lightning.data.shards import list_shards, shards_hint

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

    # ----- loading ---------------------------------------------------------------------------
    def load_arrays(self) -> OfflineArrays:
        train, self.val_arrays = load_singletask(
            self.singletask_name,
            self.resolve_path(),
            self.sparse,
            self.action_clip_eps,
            self.action_tolerance,
            load_val=self.load_val,
        )
        return train

    def setup(self, stage: str | None = None) -> None:
        if not self.sharded:
            return super().setup(stage)
        if self.shards is not None:
            return
        from rql_lightning.data.shards import OGBenchShardLoader, ShardCycler

        loader = OGBenchShardLoader(
            self.singletask_name,
            self.chunk_size,
            self.batch_size,
            self.device,
            sparse=self.sparse,
            action_clip_eps=self.action_clip_eps,
            action_tolerance=self.action_tolerance,
        )
        self.shards = ShardCycler(
            self._check_shard_dir(),
            loader,
            swap_interval=self.shard_swap_interval,
            shards_in_memory=self.shards_in_memory,
            on_stall=self.shard_stall,
        )
        first = self.shards.warm(0)
        self.obs_dim = first.observations.shape[1]
        self.action_dim = first.actions.shape[1]

    def make_stream(self, rank: int, start: int) -> WindowStream:
        if not self.sharded:
            return super().make_stream(rank, start)
        from rql_lightning.data.shards import ShardedWindowStream

        return ShardedWindowStream(self.shards, self.batch_size, self.seed, rank, start)

    def teardown(self, stage: str | None = None) -> None:
        if self.shards is not None:
            self.shards.close()
