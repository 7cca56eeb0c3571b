"""OGBench datasets as DataModules (``data=ogbench``): one file or a directory of 100M-style shards, read as
``ogbench.make_env_and_datasets`` reads them but with observations held once (:func:`load_npz`). Actions clipped and
sparse rewards: docs/algorithm.md (D1), (D3).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import logging
import threading
import urllib.error
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rql_lightning.data.datamodule import WindowDataModule, identity_record
from rql_lightning.data.dataset_checks import (
    ACTION_TOLERANCE,
    DatasetNotFoundError,
    check_arrays,
    check_npz_keys,
    check_same_layout,
    check_transitions,
    check_windows,
)
from rql_lightning.data.download import obtain_hint, shards_hint
from rql_lightning.data.generate import ensure_play_dataset
from rql_lightning.data.shard_schedule import ShardCycler
from rql_lightning.data.windows import OfflineArrays, WindowSampler, concat_arrays, sampler_from_arrays
from rql_lightning.naming import (
    DATA_DIR_ENV,
    DEFAULT_GENERATED_DIR,
    NPZ_SUFFIX,
    dataset_file,
    default_data_dir,
    list_shards,
    parse_singletask,
    singletask_name_of,
    val_path_of,
)

log = logging.getLogger("rql_lightning")

# Rows moved per step of the in-place compaction (bounds its temporary copy).
_COMPACT_BLOCK_ROWS = 1 << 16


_TASK_ENVS: dict[str, Any] = {}
_TASK_ENV_LOCK = threading.RLock()


@contextlib.contextmanager
def task_env(singletask_name: str) -> Iterator[Any]:
    """The single-task env ``ogbench.make_env_and_datasets`` builds, kept for the process (building one compiles its
    MuJoCo model): those of one dataset's tasks at a time (a task column relabels every file with each of them; an env
    holds ~150 MB); the lock keeps a prefetching thread off them."""
    import ogbench

    with _TASK_ENV_LOCK:
        if singletask_name not in _TASK_ENVS:
            if any(parse_singletask(name).dataset != parse_singletask(singletask_name).dataset for name in _TASK_ENVS):
                for env in _TASK_ENVS.values():
                    env.close()
                _TASK_ENVS.clear()
                gc.collect()  # a gym env is a reference cycle: free the other dataset's MuJoCo models first
            _TASK_ENVS[singletask_name] = ogbench.make_env_and_datasets(singletask_name, env_only=True)
        yield _TASK_ENVS[singletask_name]


def required_keys(env_name: str) -> list[str]:
    """What single-task relabelling reads besides observations/actions/terminals."""
    keys = ["observations", "actions", "terminals", "qpos"]
    if "puzzle" in env_name or "scene" in env_name:
        keys.append("button_states")
    return keys


def read_compact(
    path: Path, singletask_name: str, fix: str, action_tolerance: float | None = ACTION_TOLERANCE
) -> dict[str, np.ndarray]:
    """What ``ogbench.utils.load_dataset(path, compact_dataset=True, add_info=True)`` returns, minus ``qvel``, once
    the keys and the transitions (against the task env's spaces) pass their checks; ``fix`` ends their messages."""
    keys = required_keys(parse_singletask(singletask_name).env)
    check_npz_keys(path, keys, fix)
    with np.load(path, allow_pickle=False) as file:
        ds = {k: file[k] for k in keys}
    for k in ("observations", "actions", "terminals"):
        ds[k] = ds[k].astype(np.float32, copy=False)
    ds["valids"] = 1.0 - ds["terminals"]
    with task_env(singletask_name) as env:
        spaces = dict(obs_shape=env.observation_space.shape, action_shape=env.action_space.shape)
    ends = ds["valids"] == 0  # each episode's final observation (the file's terminals)
    check_transitions(
        str(path), ds["observations"], ds["actions"], ends, action_tolerance=action_tolerance, fix=fix, **spaces
    )
    shifted = np.concatenate([ds["terminals"][1:], [1.0]])
    ds["terminals"] = np.minimum(ds["terminals"] + shifted, 1.0).astype(np.float32)
    return ds


def _compact_rows(a: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``a[keep]`` in place (writes only reach rows already read): the only extra memory is one block's copy."""
    dst = 0
    for i in range(0, len(a), _COMPACT_BLOCK_ROWS):
        rows = a[i : i + _COMPACT_BLOCK_ROWS][keep[i : i + _COMPACT_BLOCK_ROWS]]
        a[dst : dst + len(rows)] = rows
        dst += len(rows)
    return a[:dst]


def load_npz(
    path: Path,
    singletask_name: str | Sequence[str],
    *,
    sparse: bool = False,
    action_tolerance: float = ACTION_TOLERANCE,
    fix: str | None = None,
) -> OfflineArrays:
    """One OGBench-format file -> validated, relabelled arrays in the regular layout (each task's env:
    :func:`task_env`). A list of names of one dataset's tasks: ``(N, T)`` rewards and masks, a column per task."""
    import ogbench.relabel_utils

    path = Path(path)
    names = [singletask_name] if isinstance(singletask_name, str) else list(singletask_name)
    fix = fix or f"replace it with an OGBench-format file for {parse_singletask(names[0]).dataset}"
    ds = read_compact(path, names[0], fix, action_tolerance)  # every row kept, valids = 1 - (the file's terminals)
    keep = ds["valids"] != 0  # rows that start a transition (each episode's final observation starts none)
    labels = {"rewards": [], "masks": []}
    for name in names:
        with task_env(name) as env:
            ogbench.relabel_utils.relabel_dataset(parse_singletask(name).env, env, ds)  # sets rewards, masks
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
    arrays.clip_and_sparsify(sparse)
    check_arrays(str(path), arrays, "regenerate or re-download the dataset", None)  # after the squeeze
    return arrays


def load_singletask(
    singletask_name: str | Sequence[str], dataset_path: Path, load_val: bool = True, **settings: Any
) -> tuple[OfflineArrays, OfflineArrays | None]:
    """(train, val) :func:`load_npz` arrays of a file and its ``-val.npz`` (val None unless ``load_val``)."""
    dataset_path = Path(dataset_path)
    name = parse_singletask(singletask_name if isinstance(singletask_name, str) else singletask_name[0]).dataset
    for p in (dataset_path, val_path_of(dataset_path)) if load_val else (dataset_path,):
        if not p.exists():
            raise DatasetNotFoundError(f"{p} does not exist. Get it with: {obtain_hint(name, dataset_path.parent)}")
    fix = f"delete the file and get it again: {obtain_hint(name, dataset_path.parent)}"
    train = load_npz(dataset_path, singletask_name, fix=fix, **settings)
    val = load_npz(val_path_of(dataset_path), singletask_name, fix=fix, **settings) if load_val else None
    return train, val


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class OGBenchDataModule(WindowDataModule):
    """Windows of one OGBench file and its ``-val.npz`` (:meth:`resolve_path`); ``task_ids``: a reward and mask
    column per task. The ``shard_*`` settings are :class:`ShardedOGBenchDataModule`'s."""

    source = "ogbench"
    shards = None  # sharded: the ShardCycler once set up (also the train_sampler)
    _checked = None  # sharded: the shards, once their headers are checked

    singletask_name: str = dataclasses.field(kw_only=False)
    dataset: str | None = None
    data_dir: str | Path | None = None
    dataset_path: str | Path | None = None
    sparse: bool = False
    download: bool = True
    generate_if_missing: bool = False
    generated_dir: str | Path = DEFAULT_GENERATED_DIR
    generate_transitions: int = 200_000
    generate_workers: int = 2
    load_val: bool = True
    shard_swap_interval: int = 1000
    shards_in_memory: int = 1
    shard_stall: str = "wait"

    def __post_init__(self) -> None:
        super().__post_init__()
        # What load_npz relabels for: one name, or with task_ids one per task column, on singletask_name's dataset.
        columns = [singletask_name_of(parse_singletask(self.singletask_name).dataset, t) for t in self.task_ids or []]
        self.labels = columns or self.singletask_name  # a name: (N,) rewards and masks; a list: (N, T)
        self.singletask_names = columns or [self.singletask_name]
        self.eval_env_names = [parse_singletask(n).env for n in self.singletask_names]  # each task column's env
        # The env evaluation runs in; dims() reads its spaces from it too, so evaluating in it needs no data check.
        self.eval_env_name = self.dims_env_name = parse_singletask(self.singletask_name).env
        self.dataset_name = self.dataset or parse_singletask(self.singletask_name).dataset
        self.data_dir = Path(self.data_dir).expanduser() if self.data_dir else default_data_dir()
        self.dataset_path = Path(self.dataset_path).expanduser() if self.dataset_path else None
        self.generated_dir = Path(self.generated_dir).expanduser()
        # load_npz's settings, the same for the file, its -val.npz and every shard
        self.npz_settings = dict(sparse=self.sparse, action_tolerance=self.action_tolerance)
        self.val_arrays: OfflineArrays | None = None

    def describe_source(self) -> str:
        return str(self.resolve_path())

    def dims(self) -> tuple[int, int]:
        """From the single-task env's spaces (no data read; the data is checked against them on load)."""
        with task_env(self.singletask_names[0]) as env:  # kept for the process; every task has the same spaces
            return int(env.observation_space.shape[0]), int(env.action_space.shape[0])

    def train_files(self) -> list[Path]:
        return [self.resolve_path()]

    def identity(self) -> dict:
        """:func:`identity_record` of the train files, plus ``task_ids`` when given."""
        files = [p for p in self.train_files() if p.is_file()]
        record = identity_record(self.source, self.dataset_name, self.resolve_path(), files)
        return record if self.task_ids is None else {**record, "task_ids": list(self.task_ids)}

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
            return
        why = "data.download=false"
        if self.download:  # ogbench's own downloader (skips files present)
            import ogbench.utils

            try:
                ogbench.utils.download_datasets([self.dataset_name], str(self.data_dir))
                return
            except (urllib.error.URLError, OSError) as err:
                why = f"downloading it from OGBench failed ({getattr(err, 'reason', None) or err})"
        raise DatasetNotFoundError(
            f"{path} (or its -val.npz) is not in {self.data_dir} (data.data_dir / ${DATA_DIR_ENV}) and {why}. "
            f"Get it with: {obtain_hint(self.dataset_name, self.data_dir)}"
        )

    def load_arrays(self) -> OfflineArrays:
        train, self.val_arrays = load_singletask(self.labels, self.resolve_path(), self.load_val, **self.npz_settings)
        return train


def load_shard_group(
    paths: Sequence[Path], labels: str | Sequence[str], chunk_size: int, batch_size: int, device: torch.device, **kwargs
) -> WindowSampler:
    """A group of shard files as one :class:`WindowSampler` on ``device`` (on the cycler's loader thread)."""
    fix = "delete {} and fetch or regenerate that shard"
    arrays = concat_arrays([load_npz(p, labels, fix=fix.format(p.name), **kwargs) for p in paths])  # parts freed
    source = str(paths[0]) if len(paths) == 1 else f"shards {paths[0]} .. {paths[-1].name}"
    check_windows(source, arrays.terminals, chunk_size, batch_size)  # batch: windows per step
    return sampler_from_arrays(arrays, chunk_size, device)


class ShardedOGBenchDataModule(OGBenchDataModule):
    """Windows of a directory of OGBench shards (``task.data_kind=100m_shards``), swapped by a :class:`ShardCycler`."""

    source = "ogbench-shards"

    def resolve_path(self) -> Path:
        """The shard directory: ``dataset_path``, else ``<data_dir>/<dataset>``."""
        return self.dataset_path if self.dataset_path is not None else self.data_dir / self.dataset_name

    def train_files(self) -> list[Path]:
        return list_shards(self.resolve_path())

    def _checked_shards(self) -> list[Path]:
        """The shards, each (and each ``-val.npz`` present) checked from its headers alone (keys, widths equal to
        the env's spaces, one per-row shape and dtype across all): a bad shard is found before step 0."""
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
        loader = functools.partial(  # picklable: ddp_spawn sends the datamodule to its workers
            load_shard_group,
            labels=self.labels,
            chunk_size=self.chunk_size,
            batch_size=self.per_rank_batch_size(),  # windows drawn from the dataset per step
            device=self.device,
            **self.npz_settings,
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


def ogbench_datamodule(singletask_name: str, *, data_kind: str = "standard", **settings: Any) -> OGBenchDataModule:
    """The ``_target_`` of ``conf/data/ogbench.yaml``: the layout, picked at instantiation (every rank alike) by an
    explicit ``dataset_path`` (a directory is shards), else ``data_kind``. A sharded task without shards and
    ``generate_if_missing`` trains on a generated file of its 1M-style dataset (100M is never generated here)."""
    path = Path(settings["dataset_path"]).expanduser() if settings.get("dataset_path") else None
    sharded = data_kind == "100m_shards"
    if path is not None:
        sharded = path.is_dir() or (sharded and path.suffix != NPZ_SUFFIX)
    if sharded:
        dm = ShardedOGBenchDataModule(singletask_name, **settings)
        if path is not None or not dm.generate_if_missing or dm.train_files():
            return dm
        base = parse_singletask(singletask_name).dataset
        log.warning(
            "%s has no shards; data.generate_if_missing=true: training on a generated %s file instead",
            dm.resolve_path(),
            base,
        )
        settings = {**settings, "dataset": base}
    return OGBenchDataModule(singletask_name, **settings)
