"""What ``rql-data info`` (:mod:`rql_lightning.cli.data`) reports: a dataset file, shard directory or Minari dataset."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rql_lightning.data.dataset_checks import DataConfigError, DatasetNotFoundError, check_npz_keys
from rql_lightning.data.generate import SUPPORTED_DATASETS, quiet_sim_warnings
from rql_lightning.data.minari_datamodule import has_minari
from rql_lightning.data.ogbench_datamodule import load_npz
from rql_lightning.naming import (
    NPZ_SUFFIX,
    base_dataset_name,
    dataset_file,
    default_data_dir,
    list_shards,
    singletask_name_of,
)

MANIPULATION_PREFIXES = ("cube-", "scene-", "puzzle-")


@dataclass(frozen=True)
class Summary:
    transitions: int
    episodes: int
    obs_dim: int
    action_dim: int


def resolve_dataset(dataset: str, data_dir: Path | None) -> tuple[Path, list[Path]]:
    """The dataset's path and its train files (a file, or a shard directory's shards)."""
    candidate = Path(dataset).expanduser()
    if candidate.exists() or candidate.suffix == NPZ_SUFFIX or os.sep in dataset:
        path, name, hint_dir = candidate, base_dataset_name(candidate), candidate.parent
    else:
        hint_dir = (data_dir or default_data_dir()).expanduser()
        name, path = dataset, dataset_file(hint_dir, dataset)
        if not path.exists() and (hint_dir / name).is_dir():
            path = hint_dir / name
    files = list_shards(path) if path.is_dir() else ([path] if path.is_file() else [])
    if not files:
        if name in SUPPORTED_DATASETS:
            hint = f"generate it with: rql-data generate {name} --data-dir {hint_dir}"
        else:
            hint = f"rql-data can generate only: {', '.join(SUPPORTED_DATASETS)}"
        raise DatasetNotFoundError(f"no dataset at {path}; {hint}")
    return path, files


def summarise(files: list[Path]) -> Summary:
    """Transitions, episodes, observation and action dims over all files (terminals read, nothing else)."""
    transitions = episodes = 0
    obs_dim = action_dim = 0
    for file in files:
        headers = check_npz_keys(file, ["observations", "actions", "terminals"], "regenerate or re-download it")
        with np.load(file, allow_pickle=False) as data:
            terminals = data["terminals"]
        transitions += len(terminals)
        episodes += int(np.count_nonzero(terminals))
        obs_dim, action_dim = (int(np.prod(headers[k][0][1:], dtype=np.int64)) for k in ("observations", "actions"))
    return Summary(transitions, episodes, obs_dim, action_dim)


def relabel_stats(name: str, files: list[Path], task: int) -> tuple[float, float, float]:
    """Success rate and reward range under OGBench's own single-task relabelling, read as training reads it
    (:func:`~rql_lightning.data.ogbench_datamodule.load_npz`, one file at a time)."""
    if not name.startswith(MANIPULATION_PREFIXES):
        raise DataConfigError(f"--task={task} relabelling supports manipulation datasets, not {name!r}; drop --task")
    try:
        singletask_name = singletask_name_of(name, task)
    except ValueError as err:
        raise DataConfigError(f"cannot infer the environment: {err}; name the file <dataset>-vN.npz") from None
    successes = steps = 0
    r_min, r_max = np.inf, -np.inf
    with warnings.catch_warnings():
        quiet_sim_warnings()
        for file in files:
            arrays = load_npz(file, singletask_name)
            successes += int(np.count_nonzero(arrays.masks == 0))
            steps += len(arrays)
            r_min = min(r_min, float(arrays.rewards.min()))
            r_max = max(r_max, float(arrays.rewards.max()))
    return successes / max(steps, 1), r_min, r_max


def looks_like_minari(dataset: str, data_dir: Path | None) -> bool:
    """No such file, but a Minari dataset of that id under the Minari root."""
    if Path(dataset).expanduser().exists() or dataset.endswith(NPZ_SUFFIX):
        return False
    return has_minari(dataset, data_dir)
