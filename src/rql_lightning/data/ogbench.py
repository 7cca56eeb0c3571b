"""Reading OGBench datasets through ``ogbench``'s own loader and single-task relabelling.

The path is the one ``ogbench.make_env_and_datasets(<env>-singletask-task<N>-v0, dataset_path=...)``
takes, split open so that observations are held once:

1. the file is read as ``ogbench.utils.load_dataset(path, compact_dataset=True, add_info=True)`` reads it
   (:func:`read_compact`: same dtypes and layout, every row kept, no ``next_observations`` copy), minus
   the keys relabelling does not read (``qvel``);
2. :mod:`rql_lightning.data.validate` checks it (keys, shapes, NaN/inf, action range, episode ends, dims
   against the environment's spaces);
3. ``ogbench.relabel_utils.relabel_dataset`` adds the task's ``rewards``/``masks`` from ``qpos`` (and
   ``button_states``), exactly as ``make_env_and_datasets`` does for single-task names;
4. the rows that start no transition (each episode's final observation) are squeezed out *in place*,
   which yields OGBench's regular transition layout (identical to ``compact_dataset=False``, minus
   ``next_observations``: windows read ``s_{t+h}`` from ``observations``) without a second copy.

Where files are found and how to obtain them: :mod:`rql_lightning.naming`, :mod:`rql_lightning.data.obtain`.
On top of that we apply the reference's conventions: actions clipped to ``[-1 + eps, 1 - eps]`` and,
for sparse tasks, rewards mapped to ``-(r != 0)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rql_lightning.data.arrays import OfflineArrays
from rql_lightning.data.errors import DatasetNotFoundError
from rql_lightning.data.obtain import obtain_hint
from rql_lightning.data.validate import ACTION_TOLERANCE, check_npz_keys, check_transitions
from rql_lightning.naming import dataset_name_of, eval_env_name_of, val_path_of

ACTION_CLIP_EPS = 1e-5
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
    singletask_name: str,
    env,
    *,
    sparse: bool = False,
    action_clip_eps: float = ACTION_CLIP_EPS,
    action_tolerance: float = ACTION_TOLERANCE,
    fix: str | None = None,
) -> OfflineArrays:
    """One OGBench-format file -> validated, relabelled arrays in the regular transition layout.

    ``env`` is the single-task environment (:func:`make_singletask_env`); it supplies the task for
    relabelling and the spaces the data must match. ``fix`` completes error messages ("to fix: ...").
    """
    import ogbench.relabel_utils

    path = Path(path)
    env_name = eval_env_name_of(singletask_name)
    fix = fix or f"replace it with an OGBench-format file for {dataset_name_of(singletask_name)}"
    check_npz_keys(path, required_keys(env_name), fix)
    ds = read_compact(path, env_name)  # every row kept, valids = 1 - (the file's terminals)
    ends = ds["valids"] == 0
    check_transitions(
        str(path),
        ds["observations"],
        ds["actions"],
        ends,
        action_tolerance=action_tolerance,
        obs_shape=env.observation_space.shape,
        action_shape=env.action_space.shape,
        fix=fix,
    )
    ogbench.relabel_utils.relabel_dataset(env_name, env, ds)
    for key in ("qpos", "button_states", "valids"):
        ds.pop(key, None)  # read by relabelling only: free them before the squeeze
    keep = ~ends  # rows that start a transition (each episode's final observation starts none)
    # Compact terminals on kept rows are the regular layout's: 1 on each episode's last transition.
    arrays = OfflineArrays(
        observations=_compact_rows(ds.pop("observations"), keep),
        actions=_compact_rows(ds.pop("actions"), keep),
        rewards=ds.pop("rewards")[keep],
        terminals=ds.pop("terminals")[keep].astype(np.float32),
        masks=ds.pop("masks")[keep].astype(np.float32),
    )
    np.clip(arrays.actions, -1 + action_clip_eps, 1 - action_clip_eps, out=arrays.actions)
    if sparse:
        arrays.rewards = -(arrays.rewards != 0).astype(np.float32)
    check_transitions(
        str(path), arrays.observations, arrays.actions, arrays.terminals, arrays.rewards, action_tolerance=None
    )
    return arrays


def load_singletask(
    singletask_name: str,
    dataset_path: Path,
    sparse: bool = False,
    action_clip_eps: float = ACTION_CLIP_EPS,
    action_tolerance: float = ACTION_TOLERANCE,
    load_val: bool = True,
) -> tuple[OfflineArrays, OfflineArrays | None]:
    """(train, val) arrays for one single-task variant, relabelled by ogbench (val None unless ``load_val``)."""
    dataset_path = Path(dataset_path)
    name = dataset_name_of(singletask_name)
    for p in (dataset_path, val_path_of(dataset_path)) if load_val else (dataset_path,):
        if not p.exists():
            raise DatasetNotFoundError(f"{p} does not exist. Get it with: {obtain_hint(name, dataset_path.parent)}")
    env = make_singletask_env(singletask_name)
    fix = f"delete the file and get it again: {obtain_hint(name, dataset_path.parent)}"
    kwargs = dict(sparse=sparse, action_clip_eps=action_clip_eps, action_tolerance=action_tolerance, fix=fix)
    try:
        train = load_npz(dataset_path, singletask_name, env, **kwargs)
        val = load_npz(val_path_of(dataset_path), singletask_name, env, **kwargs) if load_val else None
    finally:
        env.close()
    return train, val
