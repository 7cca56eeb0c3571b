"""Windows of a local Minari dataset (``data=minari``): an episode's ``T + 1`` observations give ``T`` rows, its
masks are ``1 - terminations``. ``generate_if_missing`` writes the ``rql/<play dataset>-task<N>-v0`` ids with
:func:`write_play_dataset_as_minari` (``minari.create_dataset_from_buffers``: ``minari.DataCollector`` pulls in jax).
"""

from __future__ import annotations

import dataclasses
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from rql_lightning.data.datamodule import WindowDataModule, identity_record
from rql_lightning.data.dataset_checks import (
    DatasetError,
    DatasetFormatError,
    DatasetNotFoundError,
    check_arrays,
)
from rql_lightning.data.generate import generate_play_dataset
from rql_lightning.data.ogbench_datamodule import read_compact, task_env
from rql_lightning.data.windows import OfflineArrays
from rql_lightning.errors import silence_unactionable_warnings
from rql_lightning.naming import (
    DEFAULT_MINARI_ROOT,
    MINARI_ROOT_ENV,
    dataset_file,
    minari_env_name,
    minari_root,
    minari_root_env,
    parse_minari_id,
    parse_singletask,
    singletask_name_of,
)


def has_minari(dataset_id: str, data_dir: str | Path | None = None) -> bool:
    return (minari_root(data_dir) / dataset_id / "data").is_dir()


def open_minari(dataset_id: str, data_dir: str | Path | None = None, download: bool = False):
    """The :class:`minari.MinariDataset` ``dataset_id`` under the root; downloads it only if ``download``."""
    import minari

    root = minari_root(data_dir)
    path = root / dataset_id / "data"
    if not path.is_dir() and download:
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
    elif not path.is_dir():
        with minari_root_env(root):
            local = sorted(minari.list_local_datasets()) if root.is_dir() else []
        raise DatasetNotFoundError(
            f"Minari dataset {dataset_id} is not in {root} (data.data_dir, else ${MINARI_ROOT_ENV}, else "
            f"{DEFAULT_MINARI_ROOT}; it has: {', '.join(local) or 'nothing'}). Fetch it with: "
            f"MINARI_DATASETS_PATH={root} minari download {dataset_id} (or data.download=true), or write one "
            f"from OGBench play data: rql-data generate cube-single-play-v0 --format minari --data-dir {root}"
        )
    return minari.MinariDataset(str(path))


def episodes_to_arrays(episodes: Iterable[Any], total_steps: int, obs_dim: int, action_dim: int) -> OfflineArrays:
    """Minari episodes -> one row per transition; a malformed episode is an error (skipping it would train on less)."""
    obs = np.empty((total_steps, obs_dim), np.float32)
    actions = np.empty((total_steps, action_dim), np.float32)
    rewards = np.empty(total_steps, np.float32)
    terminals = np.zeros(total_steps, np.float32)
    masks = np.empty(total_steps, np.float32)
    row = 0
    for ep in episodes:
        t = len(ep.rewards)
        if t == 0:
            raise DatasetFormatError(f"episode {ep.id} is empty (no step)")
        lengths = {"observations": t + 1, "actions": t, "terminations": t}
        wrong = [f"{len(getattr(ep, k))} {k}" for k, n in lengths.items() if len(getattr(ep, k)) != n]
        if wrong:
            raise DatasetFormatError(
                f"episode {ep.id} has {', '.join(wrong)} for {t} rewards (Minari episodes hold T + 1 observations and "
                "T of the rest)"
            )
        for key, width in {"observations": obs_dim, "actions": action_dim}.items():
            shape = np.shape(getattr(ep, key))[1:]
            if shape != (width,):
                raise DatasetFormatError(f"episode {ep.id} has {key} of shape {shape}, the dataset's space ({width},)")
        if row + t > total_steps:
            raise DatasetFormatError(f"episodes hold more steps than the dataset's total_steps={total_steps}")
        obs[row : row + t] = np.asarray(ep.observations[:-1])
        actions[row : row + t] = np.asarray(ep.actions)
        rewards[row : row + t] = ep.rewards
        masks[row : row + t] = 1.0 - np.asarray(ep.terminations, np.float32)
        terminals[row + t - 1] = 1.0
        row += t
    return OfflineArrays(obs[:row], actions[:row], rewards[:row], terminals[:row], masks[:row])


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class MinariDataModule(WindowDataModule):
    """Windows of a local Minari dataset (``data=minari data.dataset_id=<id>``)."""

    source = "minari"

    dataset_id: str = dataclasses.field(kw_only=False)
    data_dir: str | None = None
    download: bool = False
    sparse: bool = False
    generate_if_missing: bool = False
    generate_transitions: int = 200_000
    generate_workers: int = 2
    task_ids: None = dataclasses.field(default=None, init=False)  # one task: its dataset's rewards
    dataset: Any = dataclasses.field(default=None, init=False)  # the MinariDataset once opened (never by prepare_data)

    def describe_source(self) -> str:
        return f"Minari dataset {self.dataset_id} ({minari_root(self.data_dir) / self.dataset_id})"

    def open(self):
        if self.dataset is None:
            self.dataset = open_minari(self.dataset_id, self.data_dir, self.download)
        return self.dataset

    def prepare_data(self) -> None:
        if has_minari(self.dataset_id, self.data_dir):
            return
        generated = parse_minari_id(self.dataset_id)
        if self.generate_if_missing and generated is not None:
            generate_minari_dataset(
                *generated,
                self.dataset_id,
                self.data_dir,
                self.generate_transitions,
                num_workers=self.generate_workers,
            )
            return
        open_minari(self.dataset_id, self.data_dir, self.download)  # downloads, or says how to get it

    def dims(self) -> tuple[int, int]:
        """From the dataset's spaces (its metadata; no episode is read)."""
        import gymnasium

        ds = self.open()
        for what, space in (("observation", ds.observation_space), ("action", ds.action_space)):
            if not isinstance(space, gymnasium.spaces.Box) or len(space.shape) != 1:
                raise DatasetFormatError(
                    f"Minari dataset {self.dataset_id}: the {what} space is {space}; windows need flat Box {what}s. "
                    f"Flatten them (gymnasium.spaces.flatten / FlattenObservation) into a new dataset first"
                )
        return int(ds.observation_space.shape[0]), int(ds.action_space.shape[0])

    def identity(self) -> dict:
        folder = minari_root(self.data_dir) / self.dataset_id  # its files, sorted, hidden (temp) ones skipped
        files = sorted(p for p in (folder / "data").rglob("*") if p.is_file() and not p.name.startswith("."))
        return identity_record(self.source, self.dataset_id, folder, files)

    def load_arrays(self) -> OfflineArrays:
        ds, (obs_dim, action_dim) = self.open(), self.dims()
        fix = f"rebuild the dataset (minari delete {self.dataset_id}, then write it again)"
        try:
            arrays = episodes_to_arrays(ds.iterate_episodes(), ds.total_steps, obs_dim, action_dim)
        except DatasetFormatError as err:
            raise DatasetFormatError(f"{self.describe_source()}: {err}; {fix}") from None
        check_arrays(self.describe_source(), arrays, fix, self.action_tolerance)  # shapes: the spaces, by construction
        arrays.clip_and_sparsify(self.sparse)
        return arrays

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
        return minari_env_name(minari_root(self.data_dir).absolute() / self.dataset_id)

    def eval_env(self, **kwargs: Any):
        """The evaluation environment, as Minari recovers it (``recover_environment(eval_env=True)``)."""
        return self.open().recover_environment(eval_env=True, **kwargs)


def refuse_existing(dataset_id: str, data_dir: str | Path | None) -> Path:
    """The Minari root, once it is clear ``dataset_id`` is not there yet."""
    root = minari_root(data_dir)
    if (root / dataset_id).exists():
        raise DatasetError(
            f"{root / dataset_id} exists; delete it (minari delete {dataset_id}) or pick another --dataset-id"
        )
    return root


def write_play_dataset_as_minari(
    npz_path: str | Path,
    singletask_name: str,
    dataset_id: str,
    data_dir: str | Path | None = None,
):
    """Write an OGBench-format play file, relabelled for ``singletask_name``'s task, as the Minari dataset
    ``dataset_id`` (its env recoverable with ``recover_environment``); returns the :class:`minari.MinariDataset`."""
    import minari
    import ogbench.relabel_utils
    from minari.data_collector import EpisodeBuffer

    npz_path = Path(npz_path)
    root = refuse_existing(dataset_id, data_dir)
    with task_env(singletask_name) as env:  # the process's one, as training relabels with
        ds = read_compact(npz_path, singletask_name, "regenerate it with rql-data generate")
        ogbench.relabel_utils.relabel_dataset(parse_singletask(singletask_name).env, env, ds)
        last_rows = np.flatnonzero(ds["valids"] == 0)  # each episode's final observation
        first_rows = np.concatenate([[0], last_rows[:-1] + 1])
        buffers = []
        for s, e in zip(first_rows, last_rows, strict=True):
            t = int(e - s)  # transitions: observations s..e, actions s..e-1
            if t == 0:
                continue
            buffers.append(
                EpisodeBuffer(
                    id=len(buffers),
                    observations=ds["observations"][s : e + 1],
                    actions=ds["actions"][s:e],
                    rewards=ds["rewards"][s:e],
                    terminations=ds["masks"][s:e] == 0,
                    truncations=np.arange(t) == t - 1,  # play episodes end at the time limit
                )
            )
        with minari_root_env(root), warnings.catch_warnings():  # Minari makes <root>/<id>/data
            warnings.simplefilter("ignore")  # Minari warns about every optional metadata field left out
            return minari.create_dataset_from_buffers(
                dataset_id,
                buffers,
                env=env,
                algorithm_name="OGBench scripted plan oracles (play), relabelled by ogbench",
                author="rql-lightning",
                author_email="n/a",
                code_permalink="https://github.com/seohongpark/ogbench",
                description=(
                    f"{npz_path.name} relabelled for {singletask_name}: rewards are the task reward, "
                    "terminations mark task success (OGBench masks == 0), truncations the end of each episode"
                ),
            )


def generate_minari_dataset(
    dataset_name: str,
    task: int,
    dataset_id: str,
    data_dir: str | Path | None = None,
    num_transitions: int = 200_000,
    **generate: Any,
):
    """``dataset_name`` play data generated in a temporary file, returned as Minari relabelled for ``task``."""
    root = refuse_existing(dataset_id, data_dir)  # before minutes of generation
    with tempfile.TemporaryDirectory(prefix="rql-minari-") as tmp:
        path = generate_play_dataset(dataset_name, dataset_file(tmp, dataset_name), num_transitions, **generate)
        with warnings.catch_warnings():
            silence_unactionable_warnings()
            return write_play_dataset_as_minari(path, singletask_name_of(dataset_name, task), dataset_id, root)
