"""The DataModule contract every source follows: ``dims()`` before any load (the model is built first), ``setup``
moves the arrays to the sampling device once (a step never waits on a copy), ``identity()`` keys results by
``<source>:<dataset>#<fingerprint>`` so different data never pools (the fingerprint reads at most 2 MiB a file).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from rql_lightning.data.dataset_checks import ACTION_TOLERANCE, DataConfigError, check_arrays, check_windows
from rql_lightning.data.windows import OfflineArrays, WindowSampler, WindowStream, sampler_from_arrays
from rql_lightning.naming import data_key

FINGERPRINT_BYTES = 1 << 20  # read from each end of each file
FINGERPRINT_HEX = 12


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class WindowDataModule(L.LightningDataModule):
    """Window batches seeded by (seed, rank, step): ``batch_size`` per rank, or ``global_batch_size`` split over all."""

    chunk_size: int
    batch_size: int = 256
    device: str | torch.device = "cpu"
    seed: int = 0
    global_batch_size: int | None = None
    # A multi-task run's tasks: column c of the rewards and masks is task task_ids[c]; None: one task.
    task_ids: Sequence[int] | None = None
    action_tolerance: float = ACTION_TOLERANCE  # actions beyond [-1, 1] by more than this are an error

    def __post_init__(self) -> None:
        super().__init__()
        if self.task_ids is not None:
            if not self.task_ids or len(set(self.task_ids)) != len(self.task_ids):
                raise DataConfigError(f"task.ids={list(self.task_ids)} must name one task or more, each once")
            self.task_ids = [int(t) for t in self.task_ids]
        if self.device == "auto":  # the GPU when there is one
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(self.device)
        self.seeds: list[int] | None = None  # a seed-batched run's seeds (set by training.py): one batch per seed
        self.train_sampler: WindowSampler | None = None

    @property
    def replicas(self) -> list[tuple[int, int]] | None:
        """The :attr:`WindowStream.replicas` of this run, task-major; None for a single run."""
        if self.seeds is None and self.task_ids is None:
            return None
        columns = range(len(self.task_ids)) if self.task_ids is not None else [0]
        return [(c, int(s)) for c in columns for s in (self.seeds if self.seeds is not None else [self.seed])]

    def load_arrays(self) -> OfflineArrays:
        raise NotImplementedError("a WindowDataModule subclass defines load_arrays()")

    def dims(self) -> tuple[int, int]:
        """``(obs_dim, action_dim)``, known without loading the data (before ``prepare_data``)."""
        raise NotImplementedError("a WindowDataModule subclass defines dims()")

    def identity(self) -> dict:
        """``{source, dataset, path, size_bytes, fingerprint, key}``: what a run on this data trained on."""
        raise NotImplementedError("a WindowDataModule subclass defines identity()")

    def describe_source(self) -> str:
        """Names the data in error messages (a file, a directory, a dataset id)."""
        return f"the data of {type(self).__name__}"

    @property
    def obs_dim(self) -> int:
        return self.dims()[0]

    @property
    def action_dim(self) -> int:
        return self.dims()[1]

    def per_rank_batch_size(self, world_size: int = 1) -> int:
        """Windows each rank draws per step: ``global_batch_size // world_size``, else ``batch_size``."""
        if self.global_batch_size is None:
            return self.batch_size
        if self.global_batch_size % world_size:
            raise DataConfigError(
                f"data.global_batch_size={self.global_batch_size} does not divide over {world_size} ranks; "
                f"use a multiple of {world_size}, or data.global_batch_size=null for data.batch_size per rank"
            )
        return self.global_batch_size // world_size

    def setup(self, stage: str | None = None) -> None:
        if self.train_sampler is not None:
            return
        train = self.load_arrays()
        # per_rank_batch_size() with one rank: the windows a step draws from the dataset, over all ranks
        check_windows(self.describe_source(), train.terminals, self.chunk_size, self.per_rank_batch_size())
        self.train_sampler = sampler_from_arrays(train, self.chunk_size, self.device)

    def make_stream(self, rank: int, start: int, world_size: int = 1) -> WindowStream:
        split = world_size if self.global_batch_size is not None else 1
        stream = WindowStream(
            self.train_sampler, self.per_rank_batch_size(world_size), self.seed, rank, start, world_size=split
        )
        stream.replicas = self.replicas
        return stream

    def train_dataloader(self) -> DataLoader:
        rank = self.trainer.global_rank if self.trainer is not None else 0
        start = self.trainer.global_step if self.trainer is not None else 0  # > 0 when resuming
        stream = self.make_stream(rank, start, self.trainer.world_size if self.trainer is not None else 1)
        # Its own generator, so creating the loader does not consume the global RNG.
        return DataLoader(stream, batch_size=None, num_workers=0, generator=torch.Generator())


def identity_record(
    source: str, dataset: str, path: str | Path | None, files: Sequence[Path] = (), arrays: OfflineArrays | None = None
) -> dict:
    """:meth:`WindowDataModule.identity` of ``arrays`` or of the ``files`` of ``path`` (each one's ends, size, name)."""
    digest = hashlib.blake2b(digest_size=FINGERPRINT_HEX // 2)
    if arrays is not None:
        for name, a in vars(arrays).items():
            raw = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
            digest.update(f"{name}{a.shape}{a.dtype}".encode())
            digest.update(raw[:FINGERPRINT_BYTES].tobytes())
            digest.update(raw[-FINGERPRINT_BYTES:].tobytes())
        size = int(arrays.nbytes)
    else:
        path = Path(path)
        size = sum(f.stat().st_size for f in files)
        for file in files:
            file_size = file.stat().st_size
            if path.is_dir():
                digest.update(file.relative_to(path).as_posix().encode() + b"\0")
            digest.update(file_size.to_bytes(8, "little"))
            with open(file, "rb") as f:
                digest.update(f.read(FINGERPRINT_BYTES))
                if file_size > FINGERPRINT_BYTES:
                    f.seek(max(FINGERPRINT_BYTES, file_size - FINGERPRINT_BYTES))
                    digest.update(f.read(FINGERPRINT_BYTES))
    fp = digest.hexdigest() if arrays is not None or files else "missing"
    return {
        "source": source,
        "dataset": dataset,
        "path": str(path) if path is not None else None,
        "size_bytes": size,
        "fingerprint": fp,
        "key": data_key(source, dataset, fp),
    }


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class ArrayDataModule(WindowDataModule):
    """Windows of arrays already in memory (tests, notebooks, custom data)."""

    source = "arrays"
    arrays: OfflineArrays = dataclasses.field(kw_only=False)
    name: str = "arrays"

    def describe_source(self) -> str:
        return "the arrays given to ArrayDataModule"

    def dims(self) -> tuple[int, int]:
        return int(self.arrays.observations.shape[1]), int(self.arrays.actions.shape[1])

    def identity(self) -> dict:
        return identity_record(self.source, self.name, None, arrays=self.arrays)

    def load_arrays(self) -> OfflineArrays:
        a = self.arrays
        if a.num_tasks != len(self.task_ids or [0]):
            raise DataConfigError(
                f"the arrays hold {a.num_tasks} task column(s) but task_ids={self.task_ids}; give one id per column"
            )
        check_arrays(self.describe_source(), a, "fix the arrays", self.action_tolerance)
        return a
