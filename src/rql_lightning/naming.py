"""Naming rules, each written once (no file is read): what an OGBench or Minari name or path means, and how a run's
records name its method, module class and data. OGBench's ``cube-single-play-singletask-task1-v0`` trains on
``cube-single-play-v0.npz`` (and ``-val.npz``) and is evaluated in ``cube-single-singletask-task1-v0``; 100M
datasets are directories of shards ``<dataset>-NNN.npz``; a Minari dataset's env is ``minari:<id or folder>``."""

from __future__ import annotations

import contextlib
import os
import re
from collections import namedtuple
from collections.abc import Iterator
from pathlib import Path

DATA_DIR_ENV = "OGBENCH_DATA_DIR"  # ogbench's own variable
DEFAULT_DATA_DIR = "~/.ogbench/data"  # ogbench's own default
DEFAULT_GENERATED_DIR = "~/.cache/rql-lightning/data"  # generate_if_missing's cache (conf: $RQL_DATA_DIR)
MINARI_ROOT_ENV = "MINARI_DATASETS_PATH"  # Minari's own variable
DEFAULT_MINARI_ROOT = "~/.minari/datasets"  # Minari's own default

NPZ_SUFFIX = ".npz"
VAL_SUFFIX = "-val.npz"
MINARI_PREFIX = "minari:"  # "minari:<dataset id>": the env that Minari recovers for that dataset

_SINGLETASK = re.compile(r"^(?P<dataset>.+)-singletask-task(?P<task>\d+)-(?P<version>v\d+)$")
# <env>-<kind>[-<size>]-<version>: cube-single-play-v0, puzzle-4x4-play-100m-v0, antmaze-giant-navigate-v0
_DATASET = re.compile(r"^(?P<env>.+)-(?P<kind>[a-z]+)(?P<size>-\d+m)?-(?P<version>v\d+)$")
_SHARD_SUFFIX = re.compile(r"-\d{3,}$")
_VERSION_SUFFIX = re.compile(r"-v\d+$")


# ``<prefix>-singletask-task<N>-<version>``: its task, dataset file name (cube-single-play-v0) and evaluation env's
# gym id (cube-single-singletask-task1-v0)
SingleTask = namedtuple("SingleTask", "task dataset env")


def parse_singletask(name: str) -> SingleTask:
    """Split an OGBench single-task dataset name; ``ValueError`` if it is not one."""
    m = _SINGLETASK.match(name) if isinstance(name, str) else None
    if m is None:
        raise ValueError(f"'{name}' is not an OGBench single-task name like 'cube-single-play-singletask-task1-v0'")
    task, version = int(m["task"]), m["version"]
    env = m["dataset"].rsplit("-", 1)[0]  # drop the data kind (play, navigate, ...)
    return SingleTask(task, f"{m['dataset']}-{version}", f"{env}-singletask-task{task}-{version}")


def singletask_name_of(dataset_name: str, task: int) -> str:
    """``cube-single-play-v0``, 1 -> ``cube-single-play-singletask-task1-v0``."""
    if not _VERSION_SUFFIX.search(dataset_name):
        raise ValueError(f"'{dataset_name}' is not an OGBench dataset name like 'cube-single-play-v0'")
    prefix, version = dataset_name.rsplit("-", 1)
    return f"{prefix}-singletask-task{task}-{version}"


def dataset_env_name(dataset_name: str) -> str:
    """``cube-single-play-v0`` (or ``...-play-100m-v0``) -> ``cube-single-v0``: the gym id of its env."""
    m = _DATASET.match(dataset_name)
    if m is None:
        raise ValueError(f"'{dataset_name}' is not an OGBench dataset name like 'cube-single-play-v0'")
    return f"{m['env']}-{m['version']}"


def base_dataset_name(path: str | Path) -> str:
    """``.../cube-single-play-v0-007-val.npz`` -> ``cube-single-play-v0`` (shard and val suffixes dropped)."""
    return _SHARD_SUFFIX.sub("", Path(path).name.removesuffix(NPZ_SUFFIX).removesuffix("-val"))


def default_data_dir() -> Path:
    """Where OGBench keeps datasets: ``$OGBENCH_DATA_DIR`` if set, else ``~/.ogbench/data``."""
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR).expanduser()


def minari_root(data_dir: str | Path | None = None) -> Path:
    """The Minari datasets root: ``data_dir``, else ``$MINARI_DATASETS_PATH``, else ``~/.minari/datasets``."""
    return Path(data_dir or os.environ.get(MINARI_ROOT_ENV) or DEFAULT_MINARI_ROOT).expanduser()


@contextlib.contextmanager
def minari_root_env(root: Path) -> Iterator[None]:
    """Point Minari's own functions (which read the environment variable on each call) at ``root``."""
    old = os.environ.get(MINARI_ROOT_ENV)
    os.environ[MINARI_ROOT_ENV] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(MINARI_ROOT_ENV, None)
        else:
            os.environ[MINARI_ROOT_ENV] = old


def dataset_file(data_dir: str | Path, dataset_name: str) -> Path:
    """``<data_dir>/<dataset>.npz``."""
    return Path(data_dir).expanduser() / f"{dataset_name}{NPZ_SUFFIX}"


def val_path_of(path: str | Path) -> Path:
    """``x.npz`` -> ``x-val.npz`` (the validation split OGBench keeps beside every file)."""
    path = Path(path)
    return path.with_name(path.name[: -len(NPZ_SUFFIX)] + VAL_SUFFIX)


def shard_path(directory: str | Path, dataset_name: str, index: int) -> Path:
    """``<directory>/<dataset>-NNN.npz``: shard ``index`` of a 100M-style dataset."""
    return Path(directory) / f"{dataset_name}-{index:03d}{NPZ_SUFFIX}"


def list_shards(directory: str | Path) -> list[Path]:
    """Train shards of a directory: sorted ``*.npz`` minus ``*-val.npz`` (empty if it does not exist)."""
    return sorted(p for p in Path(directory).glob(f"*{NPZ_SUFFIX}") if not p.name.endswith(VAL_SUFFIX))


def run_dir_of(ckpt_path: str | Path) -> Path:
    """``<run>/checkpoints/x.ckpt`` -> ``<run>``; a checkpoint elsewhere -> its own folder."""
    path = Path(ckpt_path).expanduser().absolute()
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def minari_id_of(dataset_name: str, task: int) -> str:
    """The id ``rql-data generate --format minari`` gives: ``rql/cube-single-play-task1-v0``."""
    return f"rql/{_VERSION_SUFFIX.sub('', dataset_name)}-task{task}-v0"


def minari_env_name(where: str | Path) -> str:
    """``minari:<dataset id or folder>``: the evaluation env Minari recovers for that dataset."""
    return f"{MINARI_PREFIX}{where}"


def is_minari_env_name(name: str) -> bool:
    return isinstance(name, str) and name.startswith(MINARI_PREFIX)


_RQL_MINARI_ID = re.compile(r"^rql/(?P<prefix>.+)-task(?P<task>\d+)-v0$")


def parse_minari_id(dataset_id: str) -> tuple[str, int] | None:
    """``rql/cube-single-play-task1-v0`` -> (``cube-single-play-v0``, 1); None for ids not written by rql-data."""
    m = _RQL_MINARI_ID.match(dataset_id)
    return (f"{m['prefix']}-v0", int(m["task"])) if m else None


# The built-in methods' short names by module class, for records that name only the class (older summaries).
METHOD_NAMES = {"RQLModule": "rql", "FQLModule": "fql", "FlowBCModule": "bc"}


def replica_key(task: int | None, seed: int | None) -> str:
    """A replica's prefix in metric names, records and folders: ``task<t>/seed<s>`` in a task column, ``seed<s>``
    in a seed batch, empty for a single run (no seed given)."""
    if seed is None:
        return ""
    return f"seed{seed}" if task is None else f"task{task}/seed{seed}"


def class_path(cls: type) -> str:
    """``rql_lightning.modules.rql.RQLModule``: how records and checkpoints name a module class."""
    return f"{cls.__module__}.{cls.__qualname__}"


def data_key(source: str, dataset: str, fingerprint: str | None = None, path: str | None = None) -> str:
    """``<source>:<dataset>#<fingerprint>``, the data's identity (``@<path>`` in records without a fingerprint)."""
    suffix = f"#{fingerprint}" if fingerprint else f"@{path}" if path else ""
    return f"{source}:{dataset}{suffix}"
