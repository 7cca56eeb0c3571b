"""OGBench play data written as a Minari dataset, relabelled for one task.

:func:`write_play_dataset_as_minari` relabels an OGBench-format play file for one task with ogbench
and stores ``rewards`` = the task reward, ``terminations`` = task success (OGBench's ``masks == 0``)
and ``truncations`` on each episode's last step (play episodes end at the time limit and do not stop
at success). Loading it back gives exactly the arrays the OGBench path gives.
:func:`generate_minari_dataset` generates the play file first (``rql-data generate --format minari``,
and ``generate_if_missing`` for an ``rql/...`` id). Only ``minari.create_dataset_from_buffers`` is
used (``minari.DataCollector`` would pull in jax).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np

from rql_lightning.data.dataset_checks import DatasetExistsError, check_npz_keys, check_transitions
from rql_lightning.data.generate.files import DEFAULT_VAL_FRACTION, generate_play_dataset
from rql_lightning.data.generate.play_protocol import quiet_sim_warnings
from rql_lightning.data.ogbench_datamodule import make_singletask_env, read_compact, required_keys
from rql_lightning.naming import dataset_file, eval_env_name_of, minari_root, minari_root_env, singletask_name_of


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
        raise DatasetExistsError(
            f"{root / dataset_id} exists; delete it (minari delete {dataset_id}) or pick another --dataset-id"
        )
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
                description=description
                or (
                    f"{npz_path.name} relabelled for {singletask_name}: rewards are the task reward, "
                    "terminations mark task success (OGBench masks == 0), truncations the end of each episode"
                ),
            )
    finally:
        env.close()


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
    """Generate ``dataset_name`` play data in a temporary file and store it, relabelled for ``task``, as Minari.

    Returns the :class:`minari.MinariDataset` written under the Minari root.
    """
    root = minari_root(data_dir)
    if (root / dataset_id).exists():
        raise DatasetExistsError(f"{root / dataset_id} exists; delete it or pass another --dataset-id")
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
