"""Reading Minari datasets: open one under the Minari root, and turn its episodes into per-transition arrays.

Minari stores episodes: ``T + 1`` observations and ``T`` actions/rewards/terminations/truncations each.
The conversion to OGBench's regular layout (:class:`~rql_lightning.data.arrays.OfflineArrays`):

* ``observations``: each episode's first ``T`` (its final observation starts no transition; windows
  clamp to the episode's last step, exactly as with OGBench files);
* ``actions``, ``rewards``: as stored; ``masks = 1 - terminations`` (0: the episode reached a terminal
  state, no bootstrapping); ``terminals``: 1 on each episode's last transition.

Datasets live under the Minari root (:func:`rql_lightning.naming.minari_root`: ``data_dir`` if given,
else ``$MINARI_DATASETS_PATH``, else ``~/.minari/datasets``, Minari's own rule).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rql_lightning.data.arrays import OfflineArrays
from rql_lightning.data.errors import DatasetFormatError, DatasetNotFoundError
from rql_lightning.naming import DEFAULT_MINARI_ROOT, MINARI_ROOT_ENV, minari_root


def minari_folder(dataset_id: str, data_dir: str | Path | None = None) -> Path:
    """``<root>/<dataset id>``: where Minari keeps a dataset (its episodes in ``data/``)."""
    return minari_root(data_dir) / dataset_id


def has_minari(dataset_id: str, data_dir: str | Path | None = None) -> bool:
    return (minari_folder(dataset_id, data_dir) / "data").is_dir()


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


def open_minari(dataset_id: str, data_dir: str | Path | None = None, download: bool = False):
    """The :class:`minari.MinariDataset` ``dataset_id`` under the root; downloads it only if ``download``."""
    import minari

    root = minari_root(data_dir)
    path = minari_folder(dataset_id, data_dir) / "data"
    if not path.is_dir():
        if download:
            with minari_root_env(root):
                try:
                    minari.download_dataset(dataset_id)
                except Exception as err:  # network, unknown id, incompatible version: one message
                    raise DatasetNotFoundError(
                        f"Minari dataset {dataset_id} is not in {root} and downloading it failed ({err}). "
                        f"Download it where the network allows (MINARI_DATASETS_PATH={root} minari download "
                        f"{dataset_id}) or write one: rql-data generate <play dataset> --format minari "
                        f"--data-dir {root}"
                    ) from None
        else:
            with minari_root_env(root):
                local = sorted(minari.list_local_datasets()) if root.is_dir() else []
            raise DatasetNotFoundError(
                f"Minari dataset {dataset_id} is not in {root} (data.data_dir, else ${MINARI_ROOT_ENV}, else "
                f"{DEFAULT_MINARI_ROOT}; it has: {', '.join(local) or 'nothing'}). Fetch it with: "
                f"MINARI_DATASETS_PATH={root} minari download {dataset_id} (or data.download=true), or write one "
                f"from OGBench play data: rql-data generate cube-single-play-v0 --format minari --data-dir {root}"
            )
    return minari.MinariDataset(str(path))


def box_shape(space, what: str, dataset_id: str) -> tuple[int, ...]:
    import gymnasium

    if not isinstance(space, gymnasium.spaces.Box) or len(space.shape) != 1:
        raise DatasetFormatError(
            f"Minari dataset {dataset_id}: the {what} space is {space}; windows need flat Box {what}s. "
            f"Flatten them (gymnasium.spaces.flatten / FlattenObservation) into a new dataset first"
        )
    return space.shape


def episodes_to_arrays(episodes: Iterable[Any], total_steps: int, obs_dim: int, action_dim: int) -> OfflineArrays:
    """Minari episodes (``T + 1`` observations, ``T`` of the rest) -> one row per transition."""
    obs = np.empty((total_steps, obs_dim), np.float32)
    actions = np.empty((total_steps, action_dim), np.float32)
    rewards = np.empty(total_steps, np.float32)
    terminals = np.zeros(total_steps, np.float32)
    masks = np.empty(total_steps, np.float32)
    row = 0
    for ep in episodes:
        t = len(ep.rewards)
        if t == 0:
            continue
        if len(ep.observations) != t + 1 or len(ep.actions) != t:
            raise DatasetFormatError(
                f"episode {ep.id} has {len(ep.observations)} observations and {len(ep.actions)} actions for {t} "
                f"rewards; Minari episodes hold T + 1 observations and T actions"
            )
        if row + t > total_steps:
            raise DatasetFormatError(f"episodes hold more steps than the dataset's total_steps={total_steps}")
        obs[row : row + t] = np.asarray(ep.observations[:-1]).reshape(t, -1)
        actions[row : row + t] = np.asarray(ep.actions).reshape(t, -1)
        rewards[row : row + t] = ep.rewards
        masks[row : row + t] = 1.0 - np.asarray(ep.terminations, np.float32)
        terminals[row + t - 1] = 1.0
        row += t
    return OfflineArrays(obs[:row], actions[:row], rewards[:row], terminals[:row], masks[:row])
