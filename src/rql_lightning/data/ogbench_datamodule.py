"""Windows of one OGBench single-task dataset file (``<dataset>-singletask-task<N>-v0``).

:class:`OGBenchSource` holds what the single-file and the sharded module share (the task, where
files live, relabelling settings, dims from the env's spaces, the eval env);
:class:`OGBenchDataModule` adds finding, fetching or generating the one file.
The sharded variant is :class:`rql_lightning.data.sharded.ShardedOGBenchDataModule`;
:func:`rql_lightning.data.select.ogbench_datamodule` picks between them from ``task.data_kind``.
"""

from __future__ import annotations

from pathlib import Path

from rql_lightning.data.arrays import OfflineArrays
from rql_lightning.data.datamodule import WindowDataModule
from rql_lightning.data.errors import DatasetNotFoundError
from rql_lightning.data.generate.cache import ensure_play_dataset
from rql_lightning.data.identity import data_identity
from rql_lightning.data.obtain import fetch_official, obtain_hint
from rql_lightning.data.ogbench import ACTION_CLIP_EPS, load_singletask, make_singletask_env
from rql_lightning.data.validate import ACTION_TOLERANCE
from rql_lightning.naming import (
    DATA_DIR_ENV,
    DEFAULT_GENERATED_DIR,
    dataset_file,
    dataset_name_of,
    default_data_dir,
    eval_env_name_of,
    val_path_of,
)


class OGBenchSource(WindowDataModule):
    """An OGBench single-task variant as a window source: the part every OGBench layout shares."""

    source = "ogbench"

    def __init__(
        self,
        singletask_name: str,
        chunk_size: int,
        batch_size: int = 256,
        *,
        dataset: str | None = None,
        data_dir: str | None = None,
        dataset_path: str | None = None,
        sparse: bool = False,
        action_clip_eps: float = ACTION_CLIP_EPS,
        action_tolerance: float = ACTION_TOLERANCE,
        device: str = "cpu",
        seed: int = 0,
        global_batch_size: int | None = None,
    ) -> None:
        super().__init__(chunk_size, batch_size, device, seed, global_batch_size)
        self.singletask_name = singletask_name
        self.dataset_name = dataset or dataset_name_of(singletask_name)
        self.data_dir = Path(data_dir).expanduser() if data_dir else default_data_dir()
        self.dataset_path = Path(dataset_path).expanduser() if dataset_path else None
        self.sparse = sparse
        self.action_clip_eps = action_clip_eps
        self.action_tolerance = action_tolerance
        self._dims: tuple[int, int] | None = None

    def resolve_path(self) -> Path:
        raise NotImplementedError

    def describe_source(self) -> str:
        return str(self.resolve_path())

    @property
    def eval_env_name(self) -> str:
        """The OGBench single-task env this dataset's task is evaluated in."""
        return eval_env_name_of(self.singletask_name)

    def dims(self) -> tuple[int, int]:
        """From the single-task env's spaces (no data read; the data is checked against them on load)."""
        if self._dims is None:
            env = make_singletask_env(self.singletask_name)
            try:
                self._dims = (int(env.observation_space.shape[0]), int(env.action_space.shape[0]))
            finally:
                env.close()
        return self._dims

    def train_files(self) -> list[Path]:
        return [self.resolve_path()]

    def identity(self) -> dict:
        files = [p for p in self.train_files() if p.is_file()]
        return data_identity(self.source, self.dataset_name, self.resolve_path(), files)


class OGBenchDataModule(OGBenchSource):
    """Windows of one OGBench file (its ``-val.npz`` beside it).

    Where the file is (first match):

    * ``dataset_path``: an explicit ``.npz``;
    * ``<data_dir>/<dataset>.npz`` (``data_dir``: ``data.data_dir``, default ``$OGBENCH_DATA_DIR`` or
      ``~/.ogbench/data``), downloaded there by ogbench's own downloader when absent and ``download``;
    * ``<generated_dir>/<dataset>.npz``, generated with OGBench's oracles when ``generate_if_missing``.
    """

    def __init__(
        self,
        singletask_name: str,
        chunk_size: int,
        batch_size: int = 256,
        *,
        download: bool = True,
        generate_if_missing: bool = False,
        generated_dir: str = DEFAULT_GENERATED_DIR,
        generate_transitions: int = 200_000,
        generate_workers: int = 2,
        load_val: bool = True,
        **source,
    ) -> None:
        super().__init__(singletask_name, chunk_size, batch_size, **source)
        self.download = download
        self.generate_if_missing = generate_if_missing
        self.generated_dir = Path(generated_dir).expanduser()
        self.generate_transitions = generate_transitions
        self.generate_workers = generate_workers
        self.load_val = load_val
        self.val_arrays: OfflineArrays | None = None

    def resolve_path(self) -> Path:
        """What to train on: explicit path, else the official file, else the generated cache."""
        if self.dataset_path is not None:
            return self.dataset_path
        official = dataset_file(self.data_dir, self.dataset_name)
        if official.exists() or not self.generate_if_missing:
            return official
        return dataset_file(self.generated_dir, self.dataset_name)

    def prepare_data(self) -> None:
        path = self.resolve_path()
        if path.exists() and val_path_of(path).exists():
            return
        if self.dataset_path is not None:
            raise DatasetNotFoundError(
                f"data.dataset_path={path} does not exist (or its -val.npz is missing). Get it with: "
                f"{obtain_hint(self.dataset_name, path.parent)}"
            )
        if self.generate_if_missing:
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
