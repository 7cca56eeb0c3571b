"""OGBench datasets as DataModules: reading a file through ``ogbench``'s own relabelling, one file or a
directory of 100M-style shards, and the choice between the two (``data=ogbench``).

Reading follows ``ogbench.make_env_and_datasets(<env>-singletask-task<N>-v0, dataset_path=...)``, split
open so that observations are held once:

1. the file is read as ``ogbench.utils.load_dataset(path, compact_dataset=True, add_info=True)`` reads it
   (:func:`read_compact`: same dtypes and layout, every row kept, no ``next_observations`` copy), minus
   the keys relabelling does not read (``qvel``);
2. :mod:`rql_lightning.data.dataset_checks` checks it (keys, shapes, NaN/inf, action range, episode ends,
   dims against the environment's spaces);
3. ``ogbench.relabel_utils.relabel_dataset`` adds the task's ``rewards``/``masks`` from ``qpos`` (and
   ``button_states``), exactly as ``make_env_and_datasets`` does for single-task names;
4. the rows that start no transition (each episode's final observation) are squeezed out *in place*,
   which yields OGBench's regular transition layout (identical to ``compact_dataset=False``, minus
   ``next_observations``: windows read ``s_{t+h}`` from ``observations``) without a second copy.

Several tasks of one dataset (``task_ids``) read the file once, step 3 once per task (:func:`load_npz`).
On top of that the reference's conventions, docs/algorithm.md (D1) and (D3): actions clipped, sparse rewards.

:func:`ogbench_datamodule` (the ``_target_`` of ``conf/data/ogbench.yaml``) picks the layout once, when
the config is instantiated (on every rank alike), never in ``prepare_data``:

* an explicit ``dataset_path`` decides: a directory is shards, a ``.npz`` is one file;
* else ``data_kind``: ``standard`` -> :class:`OGBenchDataModule`, ``100m_shards`` ->
  :class:`ShardedOGBenchDataModule`;
* a sharded task whose shard directory is empty or absent, with ``generate_if_missing``, trains on a
  generated file of its 1M-style dataset instead (100M transitions are not generated implicitly).

A shard directory's schedule is :mod:`rql_lightning.data.shard_schedule`; every shard's headers are checked
before step 0. Where files are found: :mod:`rql_lightning.naming`; how to get them: :mod:`rql_lightning.data.download`.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rql_lightning.data.datamodule import WindowDataModule, files_identity
from rql_lightning.data.dataset_checks import (
    ACTION_CLIP_EPS,
    ACTION_TOLERANCE,
    DataConfigError,
    DatasetNotFoundError,
    check_npz_keys,
    check_same_layout,
    check_transitions,
    check_windows,
)
from rql_lightning.data.download import fetch_official, obtain_hint, shards_hint
from rql_lightning.data.generate.cache import ensure_play_dataset
from rql_lightning.data.shard_schedule import ShardCycler
from rql_lightning.data.windows import OfflineArrays, WindowSampler, concat_arrays, sampler_from_arrays
from rql_lightning.naming import (
    DATA_DIR_ENV,
    DEFAULT_GENERATED_DIR,
    NPZ_SUFFIX,
    dataset_file,
    dataset_name_of,
    default_data_dir,
    eval_env_name_of,
    list_shards,
    parse_singletask,
    singletask_name_of,
    val_path_of,
)

log = logging.getLogger("rql_lightning")

# Rows moved per step of the in-place compaction (bounds its temporary copy).
_COMPACT_BLOCK_ROWS = 1 << 16

# ------------------------------------------------------------------------------------------- loading


def make_singletask_env(singletask_name: str, **env_kwargs: Any):
    """The single-task environment ``ogbench.make_env_and_datasets`` builds for ``singletask_name``."""
    import ogbench

    return ogbench.make_env_and_datasets(singletask_name, env_only=True, **env_kwargs)


def required_keys(env_name: str) -> list[str]:
    """What single-task relabelling reads besides observations/actions/terminals."""
    keys = ["observations", "actions", "terminals", "qpos"]
    if "puzzle" in env_name or "scene" in env_name:
        keys.append("button_states")
    return keys


def read_compact(path: Path, env_name: str) -> dict[str, np.ndarray]:
    """What ``ogbench.utils.load_dataset(path, compact_dataset=True, add_info=True)`` returns, minus ``qvel``.

    Observations/actions/terminals as float32; ``valids = 1 - terminals`` (0 on each episode's final
    observation) and ``terminals`` also set on the row before it (ogbench's compact convention).
    """
    with np.load(path, allow_pickle=False) as file:
        ds = {k: file[k] for k in required_keys(env_name)}
    for k in ("observations", "actions", "terminals"):
        ds[k] = ds[k].astype(np.float32, copy=False)
    ds["valids"] = 1.0 - ds["terminals"]
    shifted = np.concatenate([ds["terminals"][1:], [1.0]])
    ds["terminals"] = np.minimum(ds["terminals"] + shifted, 1.0).astype(np.float32)
    return ds


def _compact_rows(a: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``a[keep]`` computed in place: kept rows move to the front; returns a view of them.

    Writes only go to rows already read (the destination never passes the block being read), so the
    only extra memory is one block's temporary copy.
    """
    dst = 0
    for i in range(0, len(a), _COMPACT_BLOCK_ROWS):
        rows = a[i : i + _COMPACT_BLOCK_ROWS][keep[i : i + _COMPACT_BLOCK_ROWS]]
        a[dst : dst + len(rows)] = rows
        dst += len(rows)
    return a[:dst]


def load_npz(
    path: Path,
    singletask_name: str | Sequence[str],
    env=None,
    *,
    sparse: bool = False,
    action_clip_eps: float = ACTION_CLIP_EPS,
    action_tolerance: float = ACTION_TOLERANCE,
    fix: str | None = None,
) -> OfflineArrays:
    """One OGBench-format file -> validated, relabelled arrays in the regular transition layout.

    ``env`` is the single-task environment (:func:`make_singletask_env`) when the caller has one to reuse,
    else it is built here; it supplies the task for relabelling and the spaces the data must match. ``fix``
    completes error messages ("to fix: ..."). A list of single-task names of the file's dataset: ``rewards``/
    ``masks`` are ``(N, T)``, column ``c`` relabelled with task ``c``'s env, each built and closed in turn (an
    env holds ~100 MB: five alive at once would outweigh the data at the quickstart's size).
    """
    import ogbench.relabel_utils

    path = Path(path)
    names = [singletask_name] if isinstance(singletask_name, str) else list(singletask_name)
    if len({dataset_name_of(n) for n in names}) != 1 or (env is not None and len(names) > 1):
        raise ValueError(f"load_npz relabels tasks of one dataset, building their envs itself; got {names}")
    env_name = eval_env_name_of(names[0])
    fix = fix or f"replace it with an OGBench-format file for {dataset_name_of(names[0])}"
    check_npz_keys(path, required_keys(env_name), fix)
    ds = read_compact(path, env_name)  # every row kept, valids = 1 - (the file's terminals)
    ends = ds["valids"] == 0
    keep = ~ends  # rows that start a transition (each episode's final observation starts none)
    labels = {"rewards": [], "masks": []}
    for c, name in enumerate(names):
        task_env = env if env is not None else make_singletask_env(name)
        try:
            if c == 0:
                check_transitions(
                    str(path),
                    ds["observations"],
                    ds["actions"],
                    ends,
                    action_tolerance=action_tolerance,
                    obs_shape=task_env.observation_space.shape,
                    action_shape=task_env.action_space.shape,
                    fix=fix,
                )
            ogbench.relabel_utils.relabel_dataset(eval_env_name_of(name), task_env, ds)  # sets rewards, masks
        finally:
            if env is None:
                task_env.close()
                del task_env
                gc.collect()  # a gym env is a reference cycle: free its MuJoCo model before the next task's
        for key, columns in labels.items():
            columns.append(ds.pop(key)[keep].astype(np.float32, copy=False))
    for key in ("qpos", "button_states", "valids"):
        ds.pop(key, None)  # read by relabelling only: free them before the squeeze
    if isinstance(singletask_name, str):
        rewards, masks = labels["rewards"][0], labels["masks"][0]  # (N,)
    else:
        rewards, masks = np.stack(labels["rewards"], axis=1), np.stack(labels["masks"], axis=1)  # (N, T)
    del labels
    # Compact terminals on kept rows are the regular layout's: 1 on each episode's last transition.
    arrays = OfflineArrays(
        observations=_compact_rows(ds.pop("observations"), keep),
        actions=_compact_rows(ds.pop("actions"), keep),
        rewards=rewards,
        terminals=ds.pop("terminals")[keep].astype(np.float32),
        masks=masks,
    )
    np.clip(arrays.actions, -1 + action_clip_eps, 1 - action_clip_eps, out=arrays.actions)
    if sparse:
        arrays.rewards = -(arrays.rewards != 0).astype(np.float32)
    check_transitions(
        str(path), arrays.observations, arrays.actions, arrays.terminals, arrays.rewards, action_tolerance=None
    )
    return arrays


def load_singletask(
    singletask_name: str | Sequence[str],
    dataset_path: Path,
    sparse: bool = False,
    action_clip_eps: float = ACTION_CLIP_EPS,
    action_tolerance: float = ACTION_TOLERANCE,
    load_val: bool = True,
) -> tuple[OfflineArrays, OfflineArrays | None]:
    """(train, val) arrays for one single-task variant, relabelled by ogbench (val None unless ``load_val``);
    for a list of single-task names of one dataset, one reward and mask column per task (:func:`load_npz`)."""
    dataset_path = Path(dataset_path)
    names = [singletask_name] if isinstance(singletask_name, str) else list(singletask_name)
    name = dataset_name_of(names[0])
    for p in (dataset_path, val_path_of(dataset_path)) if load_val else (dataset_path,):
        if not p.exists():
            raise DatasetNotFoundError(f"{p} does not exist. Get it with: {obtain_hint(name, dataset_path.parent)}")
    env = make_singletask_env(names[0]) if len(names) == 1 else None  # one task: one env for both files
    fix = f"delete the file and get it again: {obtain_hint(name, dataset_path.parent)}"
    kwargs = dict(sparse=sparse, action_clip_eps=action_clip_eps, action_tolerance=action_tolerance, fix=fix)
    try:
        train = load_npz(dataset_path, singletask_name, env, **kwargs)
        val = load_npz(val_path_of(dataset_path), singletask_name, env, **kwargs) if load_val else None
    finally:
        if env is not None:
            env.close()
    return train, val


# ----- DataModules --------------------------------------------------------------------------------
class OGBenchDataModuleBase(WindowDataModule):
    """An OGBench single-task variant as a window source: the part every OGBench layout shares.

    ``task_ids`` (``task.ids``): several tasks of ``singletask_name``'s dataset at once, one reward and mask
    column each (column ``c``: task ``task_ids[c]``, named ``singletask_names[c]``, evaluated in
    ``eval_env_names[c]``); None: ``singletask_name``'s task alone, as a single run.
    """

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
        task_ids: Sequence[int] | None = None,
    ) -> None:
        super().__init__(chunk_size, batch_size, device, seed, global_batch_size, task_ids)
        self.singletask_name = singletask_name
        self.singletask_names = [singletask_name]  # one per task column: task_ids's, on singletask_name's dataset
        if self.task_ids is not None:
            tasks_dataset = parse_singletask(singletask_name).dataset
            self.singletask_names = [singletask_name_of(tasks_dataset, t) for t in self.task_ids]
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

    @property
    def dims_env_name(self) -> str:
        """The env :meth:`dims` reads its spaces from: evaluating in it needs no check against the data."""
        return self.eval_env_name

    @property
    def eval_env_names(self) -> list[str]:
        """The single-task env of each task column (``[eval_env_name]`` without ``task_ids``)."""
        return [eval_env_name_of(n) for n in self.singletask_names]

    def labels(self) -> str | list[str]:
        """What :func:`load_npz` relabels for: the one single-task name, or the list of them with ``task_ids``."""
        return self.singletask_name if self.task_ids is None else self.singletask_names

    def dims(self) -> tuple[int, int]:
        """From the single-task env's spaces (no data read; the data is checked against them on load)."""
        if self._dims is None:
            env = make_singletask_env(self.singletask_names[0])  # every task of a dataset has the same spaces
            try:
                self._dims = (int(env.observation_space.shape[0]), int(env.action_space.shape[0]))
            finally:
                env.close()
        return self._dims

    def train_files(self) -> list[Path]:
        return [self.resolve_path()]

    def identity(self) -> dict:
        """:func:`files_identity` of the data, plus ``task_ids`` (the task columns) when ``task_ids`` is given."""
        files = [p for p in self.train_files() if p.is_file()]
        record = files_identity(self.source, self.dataset_name, self.resolve_path(), files)
        return record if self.task_ids is None else {**record, "task_ids": list(self.task_ids)}


class OGBenchDataModule(OGBenchDataModuleBase):
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
            self.labels(),
            self.resolve_path(),
            self.sparse,
            self.action_clip_eps,
            self.action_tolerance,
            load_val=self.load_val,
        )
        return train


class OGBenchShardLoader:
    """Loads a group of shard files into one :class:`WindowSampler` on ``device`` (reusing one env; a list of
    single-task names: a reward and mask column per task, their envs built per load, as :func:`load_npz`)."""

    def __init__(
        self,
        singletask_name: str | Sequence[str],
        chunk_size: int,
        batch_size: int,
        device: torch.device,
        **kwargs: Any,
    ) -> None:
        """``kwargs``: :func:`load_npz`'s ``sparse``, ``action_clip_eps`` and ``action_tolerance``."""
        self.singletask_name = singletask_name
        self.chunk_size, self.batch_size, self.device = chunk_size, batch_size, device
        self.kwargs = kwargs
        # Built on first use (and rebuilt after pickling: MuJoCo state does not travel); one load at a time uses
        # it, as the schedule never runs two (ShardCycler).
        self._env = None

    @property
    def env(self):
        """The single-task env, kept across loads; None for several tasks (:func:`load_npz` builds each in turn)."""
        if self._env is None and isinstance(self.singletask_name, str):
            self._env = make_singletask_env(self.singletask_name)
        return self._env

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_env": None}

    def __call__(self, paths: Sequence[Path]) -> WindowSampler:
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


class ShardedOGBenchDataModule(OGBenchDataModuleBase):
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
        self.shards: ShardCycler | None = None  # once set up; also the train_sampler a WindowStream draws from
        self._checked: list[Path] | None = None  # the shards, once their headers are checked

    def resolve_path(self) -> Path:
        """The shard directory: ``dataset_path``, else ``<data_dir>/<dataset>``."""
        return self.dataset_path if self.dataset_path is not None else self.data_dir / self.dataset_name

    def train_files(self) -> list[Path]:
        return list_shards(self.resolve_path())

    def _checked_shards(self) -> list[Path]:
        """The shards, each (and each ``-val.npz`` present) checked from its headers alone (milliseconds each:
        the keys relabelling reads, observation and action widths equal to the env's spaces, one per-row shape
        and dtype across all): a shard that disagrees is found before step 0, not when the loader reaches it."""
        if self._checked is not None:
            return self._checked
        directory = self.resolve_path()
        shards = list_shards(directory)
        if not shards:
            what = "has no .npz shards" if directory.is_dir() else "does not exist"
            raise DatasetNotFoundError(
                f"the sharded dataset {directory} {what} (searched {directory}/*.npz minus *-val.npz; "
                f"data.dataset_path, or data.data_dir / ${DATA_DIR_ENV} plus task.dataset). "
                f"{shards_hint(self.dataset_name, self.singletask_name, self.data_dir)}"
            )
        vals = [v for v in map(val_path_of, shards) if v.exists()]
        fix = (
            f"delete that file and fetch it again (rql-data download {self.dataset_name} --data-dir "
            f"{directory.parent} fetches what is missing) or regenerate the shards"
        )
        obs_dim, action_dim = self.dims()
        spaces = {"observations": (obs_dim,), "actions": (action_dim,)}
        check_same_layout([*shards, *vals], required_keys(self.eval_env_names[0]), fix, row_shapes=spaces)
        self._checked = shards
        return shards

    def prepare_data(self) -> None:
        self._checked_shards()  # nothing to fetch: `rql-data download` or `rql-data generate --shards` makes one

    def setup(self, stage: str | None = None) -> None:
        if self.shards is not None:
            return
        loader = OGBenchShardLoader(
            self.labels(),
            self.chunk_size,
            self._windows_per_step(),
            self.device,
            sparse=self.sparse,
            action_clip_eps=self.action_clip_eps,
            action_tolerance=self.action_tolerance,
        )
        self.shards = self.train_sampler = ShardCycler(
            self._checked_shards(),
            loader,
            swap_interval=self.shard_swap_interval,
            shards_in_memory=self.shards_in_memory,
            on_stall=self.shard_stall,
        )
        self.shards.warm(0)

    def teardown(self, stage: str | None = None) -> None:
        if self.shards is not None:
            self.shards.close()


# ----- which one --------------------------------------------------------------------------------
STANDARD = "standard"
SHARDED = "100m_shards"
DATA_KINDS = (STANDARD, SHARDED)


def is_sharded(data_kind: str, dataset_path: str | None) -> bool:
    """Whether this configuration trains on a shard directory."""
    if data_kind not in DATA_KINDS:
        raise DataConfigError(f"data.data_kind={data_kind!r} is unknown; use one of {', '.join(DATA_KINDS)}")
    if dataset_path:
        path = Path(dataset_path).expanduser()
        return path.is_dir() or (data_kind == SHARDED and path.suffix != NPZ_SUFFIX)
    return data_kind == SHARDED


# Settings only one of the two layouts has; everything else is OGBenchDataModuleBase's and goes to either.
SHARD_ONLY = ("shard_swap_interval", "shards_in_memory", "shard_stall")
FILE_ONLY = ("download", "generate_if_missing", "generated_dir", "generate_transitions", "generate_workers", "load_val")


def ogbench_datamodule(
    singletask_name: str, chunk_size: int, batch_size: int = 256, *, data_kind: str = STANDARD, **settings: Any
) -> OGBenchDataModuleBase:
    """The OGBench datamodule for these settings (see the module docstring for the rule); ``settings`` are the
    keyword arguments of :class:`OGBenchDataModule` and :class:`ShardedOGBenchDataModule`, each given those
    its layout takes."""
    if is_sharded(data_kind, settings.get("dataset_path")):
        layout_settings = {k: v for k, v in settings.items() if k not in FILE_ONLY}
        dm = ShardedOGBenchDataModule(singletask_name, chunk_size, batch_size, **layout_settings)
        if dm.dataset_path is not None or not settings.get("generate_if_missing") or dm.train_files():
            return dm
        base = dataset_name_of(singletask_name)
        log.warning(
            "%s has no shards; data.generate_if_missing=true: training on a generated %s file instead",
            dm.resolve_path(),
            base,
        )
        settings = {**settings, "dataset": base}
    layout_settings = {k: v for k, v in settings.items() if k not in SHARD_ONLY}
    return OGBenchDataModule(singletask_name, chunk_size, batch_size, **layout_settings)
