"""Reading OGBench datasets through ``ogbench``'s own loader and single-task relabelling.

``ogbench.make_env_and_datasets(<env>-singletask-task<N>-v0, dataset_path=...)`` loads the
file, drops each episode's last observation into the regular transition layout and relabels
``rewards``/``masks`` from the task's success. On top of that we only apply the reference's
conventions: drop the duplicated ``next_observations`` (windows read ``observations``),
clip actions to ``[-1 + eps, 1 - eps]`` and, for sparse tasks, map rewards to ``-(r != 0)``.
"""

from __future__ import annotations

import os
import re
import urllib.error
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_DATA_DIR = "~/.ogbench/data"
DATA_DIR_ENV = "OGBENCH_DATA_DIR"
ACTION_CLIP_EPS = 1e-5

_SINGLETASK = re.compile(r"^(?P<dataset>.+)-singletask-task(?P<task>\d+)-(?P<version>v\d+)$")


class DatasetNotFoundError(FileNotFoundError):
    """A dataset file is absent and could not be fetched; the message says how to get it."""


@dataclass
class OfflineArrays:
    """Per-transition arrays in OGBench's regular layout (float32, one row per transition)."""

    observations: np.ndarray  # (N, O)
    actions: np.ndarray  # (N, A)
    rewards: np.ndarray  # (N,)
    terminals: np.ndarray  # (N,) 1 on each episode's last transition
    masks: np.ndarray  # (N,) 0 where the task is completed

    def __len__(self) -> int:
        return len(self.observations)


def default_data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV, DEFAULT_DATA_DIR)).expanduser()


def dataset_name_of(singletask_name: str) -> str:
    """``cube-single-play-singletask-task1-v0`` -> ``cube-single-play-v0`` (the file's name)."""
    m = _SINGLETASK.match(singletask_name)
    if m is None:
        raise ValueError(
            f"'{singletask_name}' is not an OGBench single-task name like 'cube-single-play-singletask-task1-v0'"
        )
    return f"{m['dataset']}-{m['version']}"


def eval_env_name_of(singletask_name: str) -> str:
    """``cube-single-play-singletask-task1-v0`` -> ``cube-single-singletask-task1-v0`` (gym id)."""
    m = _SINGLETASK.match(singletask_name)
    if m is None:
        raise ValueError(f"'{singletask_name}' is not an OGBench single-task name")
    env = m["dataset"].rsplit("-", 1)[0]  # drop the data kind (play, navigate, ...)
    return f"{env}-singletask-task{m['task']}-{m['version']}"


def fetch_official(dataset_name: str, data_dir: Path) -> Path:
    """Download ``<dataset_name>.npz`` and its ``-val.npz`` with ogbench's downloader (skips files present)."""
    import ogbench.utils

    path = data_dir / f"{dataset_name}.npz"
    try:
        ogbench.utils.download_datasets([dataset_name], str(data_dir))
    except (urllib.error.URLError, OSError) as err:
        raise DatasetNotFoundError(
            f"{path} is missing and downloading it failed ({err}). Fetch it where the network allows "
            f"(python -c \"import ogbench; ogbench.download_datasets(['{dataset_name}'], '{data_dir}')\") "
            f"or generate one locally: rql-data generate {dataset_name} --data-dir {data_dir}"
        ) from err
    return path


def load_singletask(
    singletask_name: str,
    dataset_path: Path,
    sparse: bool = False,
    action_clip_eps: float = ACTION_CLIP_EPS,
) -> tuple[OfflineArrays, OfflineArrays]:
    """(train, val) arrays for one single-task variant, relabelled by ogbench."""
    import ogbench

    dataset_path = Path(dataset_path)
    for p in (dataset_path, Path(str(dataset_path).replace(".npz", "-val.npz"))):
        if not p.exists():
            raise DatasetNotFoundError(
                f"{p} does not exist. Generate it with: rql-data generate {dataset_name_of(singletask_name)} "
                f"--data-dir {dataset_path.parent}"
            )
    env, train, val = ogbench.make_env_and_datasets(
        singletask_name, dataset_path=str(dataset_path), compact_dataset=False
    )
    env.close()
    return _convert(train, sparse, action_clip_eps), _convert(val, sparse, action_clip_eps)


def _convert(ds: dict[str, np.ndarray], sparse: bool, action_clip_eps: float) -> OfflineArrays:
    ds.pop("next_observations", None)
    rewards = ds["rewards"].astype(np.float32)
    if sparse:
        rewards = -(rewards != 0).astype(np.float32)
    return OfflineArrays(
        observations=np.ascontiguousarray(ds["observations"], dtype=np.float32),
        actions=np.clip(ds["actions"], -1 + action_clip_eps, 1 - action_clip_eps).astype(np.float32),
        rewards=rewards,
        terminals=ds["terminals"].astype(np.float32),
        masks=ds["masks"].astype(np.float32),
    )
