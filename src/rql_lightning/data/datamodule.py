"""OGBenchDataModule: an offline dataset as an endless stream of window batches.

``prepare_data`` makes sure the file exists (official download, or the local oracle
generator for the embedded default); ``setup`` loads it through ogbench and moves the arrays
to the sampling device once; the dataloader then yields :class:`ChunkBatch` es sampled on
that device, so a GPU step never waits on a host-to-device copy.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset

from rql_lightning.data.ogbench import (
    ACTION_CLIP_EPS,
    DatasetNotFoundError,
    OfflineArrays,
    dataset_name_of,
    default_data_dir,
    fetch_official,
    load_singletask,
)
from rql_lightning.data.windows import WindowSampler


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
        return hash((self.seed, self.rank, index, 0)) & (2**63 - 1)

    def __iter__(self):
        index = self.start
        while True:
            self.generator.manual_seed(self.batch_seed(index))
            yield self.sampler.sample(self.batch_size, self.generator)
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

    def setup(self, stage: str | None = None) -> None:
        if self.train_sampler is not None:
            return
        train = self.load_arrays()
        self.train_sampler = sampler_from_arrays(train, self.chunk_size, self.device)
        self.obs_dim = train.observations.shape[1]
        self.action_dim = train.actions.shape[1]

    def train_dataloader(self) -> DataLoader:
        rank = self.trainer.global_rank if self.trainer is not None else 0
        start = self.trainer.global_step if self.trainer is not None else 0  # > 0 when resuming
        stream = WindowStream(self.train_sampler, self.batch_size, self.seed, rank, start)
        # Its own generator, so creating the loader does not consume the global RNG.
        return DataLoader(stream, batch_size=None, num_workers=0, generator=torch.Generator())


class ArrayDataModule(WindowDataModule):
    """Windows of arrays already in memory (tests, notebooks, custom data)."""

    def __init__(
        self, arrays: OfflineArrays, chunk_size: int, batch_size: int = 256, device: str = "cpu", seed: int = 0
    ):
        super().__init__(chunk_size, batch_size, device, seed)
        self.arrays = arrays

    def load_arrays(self) -> OfflineArrays:
        return self.arrays


class OGBenchDataModule(WindowDataModule):
    """Windows of an OGBench single-task dataset (``<dataset>-singletask-task<N>-v0``)."""

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
    ) -> None:
        super().__init__(chunk_size, batch_size, device, seed)
        self.singletask_name = singletask_name
        self.dataset_name = dataset_name_of(singletask_name)
        self.sparse = sparse
        self.data_dir = Path(data_dir).expanduser() if data_dir else default_data_dir()
        self.dataset_path = Path(dataset_path).expanduser() if dataset_path else None
        self.download = download
        self.generate_if_missing = generate_if_missing
        self.generated_dir = Path(generated_dir).expanduser()
        self.generate_transitions = generate_transitions
        self.generate_workers = generate_workers
        self.action_clip_eps = action_clip_eps
        self.val_arrays: OfflineArrays | None = None

    # ----- locating the file ---------------------------------------------------------------
    def resolve_path(self) -> Path:
        """The file to train on: explicit path, else official file, else the generated cache."""
        if self.dataset_path is not None:
            return self.dataset_path
        official = self.data_dir / f"{self.dataset_name}.npz"
        if official.exists():
            return official
        generated = self.generated_dir / f"{self.dataset_name}.npz"
        if self.generate_if_missing:
            return generated
        return official

    def prepare_data(self) -> None:
        path = self.resolve_path()
        if path.exists() and Path(str(path).replace(".npz", "-val.npz")).exists():
            return
        if self.dataset_path is not None:
            raise DatasetNotFoundError(
                f"data.dataset_path={path} does not exist (or its -val.npz is missing). Generate one with: "
                f"rql-data generate {self.dataset_name} --data-dir {path.parent}"
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
                f"{path} is missing and data.download=false. Generate it with: "
                f"rql-data generate {self.dataset_name} --data-dir {self.data_dir}"
            )

    # ----- loading ---------------------------------------------------------------------------
    def load_arrays(self) -> OfflineArrays:
        train, self.val_arrays = load_singletask(
            self.singletask_name, self.resolve_path(), self.sparse, self.action_clip_eps
        )
        return train
