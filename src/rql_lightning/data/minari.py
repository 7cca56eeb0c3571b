"""Minari datasets as the same per-transition arrays, and OGBench play data written as a Minari dataset.

Minari stores episodes: ``T + 1`` observations and ``T`` actions/rewards/terminations/truncations each.
The conversion to OGBench's regular layout (:class:`~rql_lightning.data.ogbench.OfflineArrays`):

* ``observations``: each episode's first ``T`` (its final observation starts no transition; windows
  clamp to the episode's last step, exactly as with OGBench files);
* ``actions``, ``rewards``: as stored; ``masks = 1 - terminations`` (0: the episode reached a terminal
  state, no bootstrapping); ``terminals``: 1 on each episode's last transition.

Datasets live under the Minari root: ``data_dir`` if given, else ``$MINARI_DATASETS_PATH``, else
``~/.minari/datasets`` (Minari's own rule). Evaluation environment: :meth:`MinariDataModule.eval_env`
(``dataset.recover_environment(eval_env=True)``); :attr:`MinariDataModule.eval_env_name` is its gym id,
which ``callbacks.evaluation.env_name`` accepts when it is an OGBench single-task id.

Writing (:func:`write_play_dataset_as_minari`): an OGBench-format play file is relabelled for one task
by ogbench and stored with ``rewards`` = the task reward and ``terminations`` = task success (OGBench's
``masks == 0``), ``truncations`` set on each episode's last step (play episodes end at the time limit,
and do not stop at success). Loading it back gives exactly the arrays the OGBench path gives.
Only ``minari.create_dataset_from_buffers`` is used (``minari.DataCollector`` would pull in jax).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rql_lightning.data.datamodule import WindowDataModule
from rql_lightning.data.ogbench import (
    ACTION_CLIP_EPS,
    DatasetNotFoundError,
    OfflineArrays,
    eval_env_name_of,
    make_singletask_env,
    read_compact,
    required_keys,
)
from rql_lightning.data.validate import ACTION_TOLERANCE, DatasetFormatError, check_npz_keys, check_transitions
from rql_lightning.envs import MINARI_PREFIX

MINARI_ROOT_ENV = "MINARI_DATASETS_PATH"
DEFAULT_MINARI_ROOT = "~/.minari/datasets"


def minari_root(data_dir: str | Path | None = None) -> Path:
    """The Minari datasets root: ``data_dir``, else ``$MINARI_DATASETS_PATH``, else ``~/.minari/datasets``."""
    if data_dir:
        return Path(data_dir).expanduser()
    return Path(os.environ.get(MINARI_ROOT_ENV) or DEFAULT_MINARI_ROOT).expanduser()


@contextlib.contextmanager
def _minari_root_env(root: Path) -> Iterator[None]:
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
    path = root / dataset_id / "data"
    if not path.is_dir():
        if download:
            with _minari_root_env(root):
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
            with _minari_root_env(root):
                local = sorted(minari.list_local_datasets()) if root.is_dir() else []
            raise DatasetNotFoundError(
                f"Minari dataset {dataset_id} is not in {root} (data.data_dir, else ${MINARI_ROOT_ENV}, else "
                f"{DEFAULT_MINARI_ROOT}; it has: {', '.join(local) or 'nothing'}). Fetch it with: "
                f"MINARI_DATASETS_PATH={root} minari download {dataset_id} (or data.download=true), or write one "
                f"from OGBench play data: rql-data generate cube-single-play-v0 --format minari --data-dir {root}"
            )
    return minari.MinariDataset(str(path))


def _box_shape(space, what: str, dataset_id: str) -> tuple[int, ...]:
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


class MinariDataModule(WindowDataModule):
    """Windows of a local Minari dataset (``data=minari data.dataset_id=<id>``)."""

    def __init__(
        self,
        dataset_id: str,
        chunk_size: int,
        batch_size: int = 256,
        data_dir: str | None = None,
        download: bool = False,
        sparse: bool = False,
        action_clip_eps: float = ACTION_CLIP_EPS,
        action_tolerance: float = ACTION_TOLERANCE,
        device: str = "cpu",
        seed: int = 0,
    ) -> None:
        super().__init__(chunk_size, batch_size, device, seed)
        self.dataset_id = dataset_id
        self.data_dir = data_dir
        self.download = download
        self.sparse = sparse
        self.action_clip_eps = action_clip_eps
        self.action_tolerance = action_tolerance
        self.dataset = None  # the MinariDataset, once opened

    def describe_source(self) -> str:
        return f"Minari dataset {self.dataset_id} ({minari_root(self.data_dir) / self.dataset_id})"

    def open(self):
        if self.dataset is None:
            self.dataset = open_minari(self.dataset_id, self.data_dir, self.download)
        return self.dataset

    def prepare_data(self) -> None:
        self.open()

    def load_arrays(self) -> OfflineArrays:
        ds = self.open()
        obs_shape = _box_shape(ds.observation_space, "observation", self.dataset_id)
        action_shape = _box_shape(ds.action_space, "action", self.dataset_id)
        try:
            arrays = episodes_to_arrays(ds.iterate_episodes(), ds.total_steps, obs_shape[0], action_shape[0])
        except DatasetFormatError as err:
            raise DatasetFormatError(f"{self.describe_source()}: {err}") from None
        check_transitions(
            self.describe_source(),
            arrays.observations,
            arrays.actions,
            arrays.terminals,
            arrays.rewards,
            action_tolerance=self.action_tolerance,
            obs_shape=obs_shape,
            action_shape=action_shape,
            fix=f"rebuild the dataset (minari delete {self.dataset_id}, then write it again)",
        )
        np.clip(arrays.actions, -1 + self.action_clip_eps, 1 - self.action_clip_eps, out=arrays.actions)
        if self.sparse:
            arrays.rewards = -(arrays.rewards != 0).astype(np.float32)
        return arrays

    # ----- evaluation ------------------------------------------------------------------------
    @property
    def eval_env_gym_id(self) -> str | None:
        """Gym id of the dataset's evaluation env (its collection env if none is recorded)."""
        ds = self.open()
        spec = ds._eval_env_spec or ds.env_spec  # Minari keeps the eval spec private; same rule as recover
        return spec.id if spec is not None else None

    @property
    def eval_env_name(self) -> str:
        """What the evaluation callback builds: the env Minari recovers for this dataset (by its folder,
        so a ``data.data_dir`` root works in evaluation worker processes too)."""
        return f"{MINARI_PREFIX}{minari_root(self.data_dir).absolute() / self.dataset_id}"

    def eval_env(self, **kwargs: Any):
        """The evaluation environment, as Minari recovers it (``recover_environment(eval_env=True)``)."""
        return self.open().recover_environment(eval_env=True, **kwargs)


# ------------------------------------------------------------------------------------------ writing


def write_play_dataset_as_minari(
    npz_path: str | Path,
    singletask_name: str,
    dataset_id: str,
    data_dir: str | Path | None = None,
    description: str | None = None,
):
    """Write an OGBench-format play file, relabelled for one task, as the Minari dataset ``dataset_id``.

    ``singletask_name`` (``cube-single-play-singletask-task1-v0``) picks the task; its env becomes the
    dataset's env (recoverable with ``recover_environment``). Returns the :class:`minari.MinariDataset`.
    """
    import minari
    import ogbench.relabel_utils
    from minari.data_collector import EpisodeBuffer

    npz_path = Path(npz_path)
    env_name = eval_env_name_of(singletask_name)
    root = minari_root(data_dir)
    if (root / dataset_id).exists():
        raise FileExistsError(f"{root / dataset_id} exists; delete it (minari delete {dataset_id}) or pick another id")
    check_npz_keys(npz_path, required_keys(env_name), "regenerate it with rql-data generate")
    env = make_singletask_env(singletask_name)
    try:
        ds = read_compact(npz_path, env_name)
        ends = ds["valids"] == 0  # each episode's final observation
        check_transitions(
            str(npz_path),
            ds["observations"],
            ds["actions"],
            ends,
            obs_shape=env.observation_space.shape,
            action_shape=env.action_space.shape,
        )
        ogbench.relabel_utils.relabel_dataset(env_name, env, ds)
        last_rows = np.flatnonzero(ends)
        first_rows = np.concatenate([[0], last_rows[:-1] + 1])
        buffers = []
        for s, e in zip(first_rows, last_rows, strict=True):
            t = int(e - s)  # transitions: observations s..e, actions s..e-1
            if t == 0:
                continue
            truncations = np.zeros(t, bool)
            truncations[-1] = True
            buffers.append(
                EpisodeBuffer(
                    id=len(buffers),
                    observations=ds["observations"][s : e + 1],
                    actions=ds["actions"][s:e],
                    rewards=ds["rewards"][s:e],
                    terminations=ds["masks"][s:e] == 0,
                    truncations=truncations,
                )
            )
        root.mkdir(parents=True, exist_ok=True)
        with _minari_root_env(root), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Minari warns about every optional metadata field left out
            return minari.create_dataset_from_buffers(
                dataset_id,
                buffers,
                env=env,
                algorithm_name="OGBench scripted plan oracles (play), relabelled by ogbench",
                author="rql-lightning",
                author_email="n/a",
                code_permalink="https://github.com/seohongpark/ogbench",
                description=description
                or (
                    f"{npz_path.name} relabelled for {singletask_name}: rewards are the task reward, "
                    "terminations mark task success (OGBench masks == 0), truncations the end of each episode"
                ),
            )
    finally:
        env.close()
