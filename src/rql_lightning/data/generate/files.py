"""Writing a generated dataset (one file or 100M-style shards, atomically) and the cache that generates it once."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from rql_lightning.data.dataset_checks import DataConfigError, npz_headers
from rql_lightning.data.generate.play_protocol import (
    DEFAULT_EPISODE_STEPS,
    SPLIT_TRAIN,
    SPLIT_VAL,
    EpisodeSpec,
    check_dataset_name,
    collect_in_pool,
    collect_in_process,
)
from rql_lightning.file_writes import WriteRefusedError, refusal, write_atomically
from rql_lightning.naming import NPZ_SUFFIX, dataset_file, shard_path, val_path_of

DEFAULT_VAL_FRACTION = 0.1
_KEPT = "the files finished before it are complete (shards are kept by the next run)"  # after a refused write
_AGAIN = "run the same command again"


@dataclass(frozen=True)
class FileSpec:
    """One ``.npz`` pair (train file + ``-val.npz``) and the episodes that go into each."""

    path: Path
    train: tuple[EpisodeSpec, ...]
    val: tuple[EpisodeSpec, ...]


def _plan_files(
    dataset_name: str, save_path: Path, num_train_episodes: int, num_shards: int, val_fraction: float
) -> list[FileSpec]:
    """Assign globally numbered train/val episodes to output files (one file, or one per shard, split evenly)."""
    paths = [save_path] if num_shards == 1 else [shard_path(save_path, dataset_name, i) for i in range(num_shards)]
    base, extra = divmod(num_train_episodes, num_shards)
    files = []
    next_train = next_val = 0
    for k, path in enumerate(paths):
        n_train = base + (1 if k < extra else 0)
        n_val = max(1, round(val_fraction * n_train))
        train = tuple(EpisodeSpec(SPLIT_TRAIN, next_train + i) for i in range(n_train))
        val = tuple(EpisodeSpec(SPLIT_VAL, next_val + i) for i in range(n_val))
        next_train += n_train
        next_val += n_val
        files.append(FileSpec(path, train, val))
    return files


def generate_play_dataset(
    dataset_name: str,
    save_path: str | Path,
    num_transitions: int,
    seed: int = 0,
    num_workers: int = 1,
    progress: bool = True,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    *,
    num_shards: int = 1,
    resume: bool = True,
    max_episode_steps: int = DEFAULT_EPISODE_STEPS,
) -> Path:
    """Generate an OGBench-format play dataset with OGBench's scripted plan oracles: ``save_path`` is the ``.npz``
    (its ``-val.npz`` beside it), or with ``num_shards > 1`` a directory of shards in OGBench's 100M layout (complete
    ones kept when ``resume``). The output depends only on ``seed``, not on worker or shard counts."""
    check_dataset_name(dataset_name)
    counts = {
        "num_transitions": num_transitions,
        "num_workers": num_workers,
        "num_shards": num_shards,
        "max_episode_steps": max_episode_steps,
    }
    for key, value in counts.items():
        if value < 1:
            raise DataConfigError(f"{key}={value} must be >= 1; pass a positive count")
    if not 0.0 <= val_fraction <= 1.0:
        raise DataConfigError(f"val_fraction={val_fraction} is outside [0, 1]; pass a fraction of train episodes")
    save_path = Path(save_path).expanduser()
    if num_shards == 1 and save_path.suffix != NPZ_SUFFIX:
        raise DataConfigError(f"save_path={save_path} must end with '.npz'; for shards pass num_shards > 1")

    num_train_episodes = max(1, math.ceil(num_transitions / max_episode_steps))
    if num_shards > num_train_episodes:
        raise DataConfigError(
            f"num_shards={num_shards} exceeds the {num_train_episodes} train episodes; "
            "request more transitions or fewer shards"
        )
    files = _plan_files(dataset_name, save_path, num_train_episodes, num_shards, val_fraction)
    if num_shards > 1 and resume:
        files = [f for f in files if not (f.path.exists() and val_path_of(f.path).exists())]
    if num_shards > 1:  # made now, before minutes of collection, so a refusal comes first
        try:
            save_path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise WriteRefusedError(refusal("the shard directory", save_path, err, _KEPT, _AGAIN)) from None

    specs = [spec for f in files for spec in (*f.train, *f.val)]
    if not specs:
        return save_path
    workers = min(num_workers, len(specs))
    collect = (dataset_name, seed, max_episode_steps, specs)
    episodes = collect_in_process(*collect) if workers == 1 else collect_in_pool(*collect, workers)
    desc = f"generating {dataset_name}"
    bar = tqdm(total=len(specs) * max_episode_steps, unit="step", unit_scale=True, desc=desc, disable=not progress)
    try:
        for file in files:  # each file written as soon as its episodes are in
            collected = {}
            for split, split_specs in (("train", file.train), ("val", file.val)):
                chunk = []
                for _ in split_specs:
                    chunk.append(next(episodes))
                    bar.update(len(chunk[-1]["terminals"]))
                collected[split] = {key: np.concatenate([ep[key] for ep in chunk]) for key in chunk[0]}
            # Val first: once the train file exists its companion does too (what the cache check relies on). Whole
            # or not at all (write_atomically): readers never see a half-written dataset.
            for path, arrays in ((val_path_of(file.path), collected["val"]), (file.path, collected["train"])):
                write_atomically(
                    path,
                    lambda f, arrays=arrays: np.savez_compressed(f, **arrays),
                    what="the generated data file",
                    state=lambda: _KEPT,
                    then=_AGAIN,
                )
    finally:
        episodes.close()  # runs the generator's cleanup now (RNG restore / pool shutdown), not at GC time
        bar.close()
    return save_path


def ensure_play_dataset(
    dataset_name: str, data_dir: str | Path, num_transitions: int, seed: int = 0, num_workers: int = 1
) -> Path:
    """``<data_dir>/<dataset_name>.npz``, generated (with its ``-val.npz``) only if either is missing: keyed by name,
    an existing file (maybe OGBench's own) is trusted, with a warning if it holds fewer transitions than requested."""
    path = dataset_file(data_dir, dataset_name)
    if path.exists() and val_path_of(path).exists():
        available = npz_headers(path)["terminals"][0][0]
        if available < num_transitions:
            warnings.warn(
                f"{path} holds {available} transitions, fewer than the {num_transitions} requested; "
                "delete it to regenerate",
                stacklevel=2,
            )
        return path
    return generate_play_dataset(dataset_name, path, num_transitions, seed=seed, num_workers=num_workers)
