"""OGBench play data written as a Minari dataset relabelled for one task (``rewards`` the task reward,
``terminations`` task success, ``truncations`` each episode's end): loading it back gives the OGBench path's arrays.
Only ``minari.create_dataset_from_buffers`` is used (``minari.DataCollector`` would pull in jax).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np

from rql_lightning.data.dataset_checks import DatasetError, check_transitions
from rql_lightning.data.generate.files import DEFAULT_VAL_FRACTION, generate_play_dataset
from rql_lightning.data.generate.play_protocol import quiet_sim_warnings
from rql_lightning.data.ogbench_datamodule import read_compact, task_env
from rql_lightning.naming import dataset_file, eval_env_name_of, minari_root, minari_root_env, singletask_name_of


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
    env_name = eval_env_name_of(singletask_name)
    root = refuse_existing(dataset_id, data_dir)
    with task_env(singletask_name) as env:  # the process's one, as training relabels with
        ds = read_compact(npz_path, env_name, "regenerate it with rql-data generate")
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
        root.mkdir(parents=True, exist_ok=True)
        with minari_root_env(root), warnings.catch_warnings():
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
    *,
    seed: int = 0,
    num_workers: int = 1,
    progress: bool = True,
    val_fraction: float = DEFAULT_VAL_FRACTION,
):
    """Generate ``dataset_name`` play data in a temporary file; returns it as Minari, relabelled for ``task``."""
    root = refuse_existing(dataset_id, data_dir)  # before minutes of generation
    with tempfile.TemporaryDirectory(prefix="rql-minari-") as tmp:
        path = generate_play_dataset(
            dataset_name,
            dataset_file(tmp, dataset_name),
            num_transitions,
            seed=seed,
            num_workers=num_workers,
            progress=progress,
            val_fraction=val_fraction,
        )
        with warnings.catch_warnings():
            quiet_sim_warnings()
            return write_play_dataset_as_minari(path, singletask_name_of(dataset_name, task), dataset_id, root)
